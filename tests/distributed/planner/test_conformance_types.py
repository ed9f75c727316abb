"""TorchRec 1.8.0 planner names: types, constants, utils, topology configs, plan loading, issue 21.

References are hand-computed values or independent recomputation (hashlib, plain arithmetic)."""

import hashlib
import logging

import pytest
import torch

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from recsys_lib.distributed.planner.constants import HUNDRED_GB, SSD_CAP, kernel_bw_lookup
from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
from recsys_lib.distributed.planner.planners import (
    extract_plan,
    validate_compute_kernels,
    validate_modules_inclusion_in_sharding_plan,
    validate_rank_assignment,
)
from recsys_lib.distributed.planner.types import (
    CustomTopologyData,
    HardwareConfig,
    KernelConfig,
    Perf,
    PlanLoader,
    PlannerError,
    PlannerErrorType,
    SharderData,
    Storage,
    TopologyFactory,
    TrainerConfig,
    hash_sha256_str,
    hash_sha256_to_int,
    round_to_nearest,
)
from recsys_lib.distributed.planner.utils import (
    build_sharder_data,
    extract_comm_data_type_size,
    get_num_poolings,
    is_prefetch_pipelined,
)
from recsys_lib.distributed.planner._sharder_data import StorageUsageType
from recsys_lib.distributed.types import CacheParams, ShardingPlan

from ._helpers import EbcTestSharder, TwoTower, make_ebc


def test_storage_ssd_order_and_perf_total():
    assert Storage(1, 2) < Storage(2, 0) and Storage(1, 2, 3) + Storage(1, 1) == Storage(2, 3, 3)
    assert not Storage(1, 2, 3).fits_in(Storage(1, 2, 2)) and Storage(1, 2, 2).fits_in(Storage(1, 2, 2))
    p = Perf(1, 2, 3, 4, input_dist_comms=5, prefetch_compute=6)
    assert p.total == 1 + 2 + 3 + 4 + 6  # input distribution is reported, not summed
    assert (p + p).input_dist_comms == 10


def test_topology_ssd_pod_and_custom_data():
    t = Topology(world_size=8, compute_device="cuda", local_world_size=2, pod_size=4)
    assert t.intra_group_size == 8 and t.devices[3].storage.ssd == SSD_CAP and t.ssd_mem_bw == 104857.6
    assert Topology(world_size=8, compute_device="cuda", local_world_size=4).intra_group_size == 4
    c = CustomTopologyData(data={"hbm_cap": [1, 2], "ssd_cap": [5, 6]}, world_size=2)
    t2 = Topology(world_size=2, compute_device="cuda", custom_topology_data=c)
    assert [d.storage.hbm for d in t2.devices] == [1, 2] and [d.storage.ssd for d in t2.devices] == [5, 6]
    with pytest.raises(ValueError, match="foo"):
        CustomTopologyData(data={"foo": [1, 2]}, world_size=2)


def test_topology_factory_precedence():
    hw = HardwareConfig(hbm_cap_bytes=80, ddr_cap_bytes=100, hbm_mem_bw=7.0)
    tr = TrainerConfig(world_size=4, local_world_size=2, hbm_cap_bytes=40)
    t = TopologyFactory.create_topology(tr, hw, KernelConfig(compute_device="cuda"))
    assert t.devices[0].storage.hbm == 40 and t.devices[0].storage.ddr == 100  # trainer > hardware
    assert t.hbm_mem_bw == 963146416.128  # hardware bandwidths only with use_hardware_based_bandwidth
    t2 = TopologyFactory.create_topology(tr, hw, KernelConfig(use_hardware_based_bandwidth=True))
    assert t2.hbm_mem_bw == 7.0
    dry = TopologyFactory.create_topology(TrainerConfig(world_size=2, is_dry_run=True, dry_run_hbm_bytes=9), hw)
    assert dry.devices[1].storage.hbm == 9
    with pytest.raises(ValueError, match="world_size"):
        TopologyFactory.create_topology(TrainerConfig())
    assert HardwareConfig(ddr_cap_bytes=0).get_validation_issues() == ["ddr_cap_bytes=0 is non-positive"]


def test_hash_helpers_match_hashlib():
    data = [1, "a", (2.5,)]
    digest = hashlib.sha256(str(data).encode("utf-8")).hexdigest()
    assert hash_sha256_str(data) == digest and hash_sha256_to_int(data) == int(digest, 16)
    assert round_to_nearest(10, 4) == 8 and round_to_nearest(11, 4) == 12
    assert round_to_nearest(HUNDRED_GB + 1, HUNDRED_GB) == HUNDRED_GB


def test_kernel_bw_lookup_table():
    hbm, ddr, h2d, ssd = 1000.0, 70.0, 3.0, 0.5
    assert kernel_bw_lookup("cuda", "fused_uvm", hbm, ddr, h2d) == h2d / 10
    assert kernel_bw_lookup("cuda", "fused_uvm_caching", hbm, ddr, h2d, 0.5) == pytest.approx((500 + 1.5) / 10)
    assert kernel_bw_lookup("cuda", "fused_uvm_caching", hbm, ddr, h2d, 0.5, True) == hbm
    assert kernel_bw_lookup("cuda", "key_value", hbm, ddr, h2d, None, False, ssd) == ssd
    assert kernel_bw_lookup("cpu", "dense", hbm, ddr, h2d) == ddr / 2
    assert kernel_bw_lookup("mtia", "fused_uvm", hbm, ddr, h2d) is None


def _space(topology, model, constraints=None):
    return EmbeddingEnumerator(topology, batch_size=8, constraints=constraints).enumerate(model, [EbcTestSharder()])


def test_sharder_data_and_utils():
    data = build_sharder_data(EbcTestSharder(fused_params={"prefetch_pipeline": True, "cache_load_factor": 0.3}))
    assert data.storage_usage_type == StorageUsageType.BASE and data.fused_params["cache_load_factor"] == 0.3
    opt = _space(Topology(world_size=2, compute_device="cpu"), make_ebc([10], [8], features_per_table=2))[0]
    assert is_prefetch_pipelined(opt, data) and not is_prefetch_pipelined(opt, SharderData({}, {}, StorageUsageType.BASE))
    q = SharderData({}, {"POOLED_EMBEDDINGS_ALL_TO_ALL": (2.0, 1.0)}, StorageUsageType.BASE)
    assert extract_comm_data_type_size(opt, q) == (2.0, 1.0, 4.0, 4.0)
    assert get_num_poolings(None, opt) == [1.0, 1.0]
    pc = {"t0": ParameterConstraints(pooling_factors=[1.0, 2.0], num_poolings=[3.0, 4.0])}
    assert get_num_poolings(pc, opt) == [3.0, 4.0]


def test_sharding_option_keys_and_guarded_kernels():
    space = _space(Topology(world_size=2, compute_device="cuda"), make_ebc([10], [8]))
    assert {o.module_type_key for o in space} == {"recsys_lib.modules.embedding_modules.EmbeddingBagCollection"}
    assert not any(o.has_feature_processor for o in space)
    assert not {o.compute_kernel for o in space} & {"key_value", "ssd_virtual_table", "dram_virtual_table"}
    kv = _space(Topology(world_size=2, compute_device="cuda"), make_ebc([10], [8]),
                {"t0": ParameterConstraints(compute_kernels=["key_value"])})
    assert {o.compute_kernel for o in kv} == {"key_value"}


def test_issue21_unknown_table_warns_and_long_pooling_factors_raise(caplog):
    topo = Topology(world_size=1, compute_device="cpu")
    with caplog.at_level(logging.WARNING):
        _space(topo, make_ebc([10], [8]), {"nope": ParameterConstraints()})
    assert "nope" in caplog.text
    with pytest.raises(PlannerError, match="pooling_factors has 2") as e:
        _space(topo, make_ebc([10], [8]), {"t0": ParameterConstraints(pooling_factors=[1.0, 2.0])})
    assert e.value.error_type == PlannerErrorType.INPUT_VALIDATION


class _Loader(PlanLoader):
    def __init__(self, options, context=None):
        self.options, self.context = options, context

    def load(self):
        return self.options

    def plan_context_hash(self):
        return self.context


def test_plan_loader_round_trip_and_context_check():
    topo = Topology(world_size=2, compute_device="cpu")
    model = make_ebc([100, 200, 300], [8, 8, 8])
    first = EmbeddingShardingPlanner(topology=topo, debug=False)
    plan = first.plan(model, [EbcTestSharder()])
    best = first._best_plan
    stored = {o.storage_hash(): o for o in best}
    # reversed ranks: the loaded plan must win over anything the search would pick
    for o in stored.values():
        for s in o.shards:
            s.rank = topo.world_size - 1 - s.rank
    ctx = first.hash_planner_context_inputs_str()
    loaded = EmbeddingShardingPlanner(topology=topo, debug=False, plan_loader=_Loader(stored, ctx)).plan(
        model, [EbcTestSharder()]
    )
    for name, ps in plan.plan[""].items():
        assert loaded.plan[""][name].ranks == [1 - r for r in ps.ranks]
    with pytest.raises(PlannerError) as e:
        EmbeddingShardingPlanner(topology=topo, debug=False, plan_loader=_Loader(stored, "other")).plan(
            model, [EbcTestSharder()]
        )
    assert e.value.error_type == PlannerErrorType.PLANNER_INPUT_CONTEXT_MISMATCH
    space = _space(topo, model)
    with pytest.raises(PlannerError, match="match"):
        extract_plan(space, {**stored, 12345: best[0]})


def test_plan_validators():
    topo = Topology(world_size=2, compute_device="cpu")
    model = TwoTower([10, 20], [8, 8])
    tw = {n: ParameterConstraints(sharding_types=["table_wise"]) for n in ("t0", "t1")}
    plan = EmbeddingShardingPlanner(topology=topo, debug=False, constraints=tw).plan(model, [EbcTestSharder()])
    validate_rank_assignment(plan, topo)
    validate_modules_inclusion_in_sharding_plan(plan, model, [EbcTestSharder()])
    assert sorted(r for ps in plan.plan["sparse.ebc"].values() for r in ps.ranks) == [0, 1]  # balanced
    with pytest.raises(PlannerError) as e:
        validate_rank_assignment(plan, Topology(world_size=1, compute_device="cpu"))
    assert e.value.error_type == PlannerErrorType.INVALID_RANK_ASSIGNMENT
    with pytest.raises(PlannerError) as e:
        validate_modules_inclusion_in_sharding_plan(ShardingPlan({}), model, [EbcTestSharder()])
    assert e.value.error_type == PlannerErrorType.MISSING_MODULE_IN_PLAN
    bad = _space(topo, make_ebc([10], [8]))[0]
    bad.compute_kernel = "nonsense"
    with pytest.raises(PlannerError, match="nonsense") as e:
        validate_compute_kernels([bad])
    assert e.value.error_type == PlannerErrorType.INVALID_COMPUTE_KERNEL
    cached = _space(Topology(world_size=2, compute_device="cuda"), make_ebc([10], [8]),
                    {"t0": ParameterConstraints(compute_kernels=["fused_uvm_caching"],
                                                cache_params=CacheParams(load_factor=1.5))})[0]
    with pytest.raises(PlannerError, match="cache_load_factor"):
        validate_compute_kernels([cached])
    assert torch.is_tensor(bad.tensor)
