"""``planner.estimator`` (configurable perf estimator), ``EmbeddingOffloadStats`` and the offload
scale-up proposer, against hand-computed values."""

import pytest
import torch

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
from recsys_lib.distributed.planner.estimator import (
    EmbeddingPerfEstimatorFactory,
    HardwarePerfConfig,
    PerfCoefficient,
    PerfCoefficientConfig,
    EstimatorPerfCoefficients,
    ShardPerfContext,
    forward_compute,
    supported_sharding_types,
)
from recsys_lib.distributed.planner.estimator.estimator import (
    compute_block_usage_penalty,
    get_embedding_perf_sharding_evaluator,
)
from recsys_lib.distributed.planner.proposers import EmbeddingOffloadScaleupProposer
from recsys_lib.distributed.planner.shard_estimators import EmbeddingOffloadStats, calculate_shard_storages
from recsys_lib.distributed.planner.utils import build_sharder_data, build_sharder_data_map
from recsys_lib.distributed.types import CacheParams

from ._helpers import EbcTestSharder, make_ebc


def _ctx(**kw):
    base = dict(sharding_type="table_wise", compute_kernel="fused", hash_size=100, emb_dim=128, batch_sizes=[4],
                num_poolings=[1.0], input_lengths=[3.0], world_size=2, local_world_size=2, intra_group_size=2,
                device_bw=1000.0, intra_host_bw=10.0, inter_host_bw=1.0)
    base.update(kw)
    return ShardPerfContext(**base)


def test_block_penalty():
    assert [compute_block_usage_penalty(d) for d in (32, 64, 128)] == [1.75, 1.15, 1.0]


def test_table_wise_forward_compute_by_hand():
    cfg = HardwarePerfConfig()
    ctx = _ctx()
    # ids seen by the shard: 3 per sample x 4 samples x 2 ranks = 24; outputs: 4 x 2 = 8
    read, lookup, write = 24 * 8, 24 * 128 * 4, 8 * 128 * 4
    ev = get_embedding_perf_sharding_evaluator("table_wise")
    assert ev.compute_fwd_comp(ctx, cfg) == pytest.approx((read + lookup + write) / 1000.0)
    assert ev.compute_bwd_comp(ctx, cfg) == pytest.approx(2 * (read + lookup + write) / 1000.0)
    # row-wise: the ids spread over the 2 ranks
    rw = get_embedding_perf_sharding_evaluator("row_wise")
    assert rw.compute_fwd_comp(_ctx(sharding_type="row_wise"), cfg) == pytest.approx((12 * 8 + 12 * 128 * 4 + write) / 1000.0)
    inf = get_embedding_perf_sharding_evaluator("table_wise", is_inference=True)
    assert inf.compute_bwd_comp(ctx, cfg) == 0.0 and inf.compute_bwd_comms(ctx, cfg) == 0.0


def test_coefficients_and_annotations():
    class Lookups(HardwarePerfConfig):
        @property
        def coefficients(self):
            return PerfCoefficientConfig(table_wise=EstimatorPerfCoefficients(fwd=PerfCoefficient(0.0, 1.0, 0.0, 0.0)))

    ev = get_embedding_perf_sharding_evaluator("table_wise")
    assert ev.compute_fwd_comp(_ctx(), Lookups()) == pytest.approx(24 * 128 * 4 / 1000.0)

    @supported_sharding_types("table_wise")
    class Custom(HardwarePerfConfig):
        @forward_compute(sharding_type="table_wise")
        def fwd(self, ctx):
            return 42.0

    assert ev.compute_fwd_comp(_ctx(), Custom()) == 42.0
    with pytest.raises(ValueError, match="row_wise"):
        Custom().validate_sharding_type("row_wise")


def test_factory_estimates_every_option():
    topo = Topology(world_size=2, compute_device="cuda")
    en = EmbeddingEnumerator(topo, batch_size=8)
    space = en.enumerate(make_ebc([1000, 50], [64, 16]), [EbcTestSharder()])
    assert EmbeddingPerfEstimatorFactory.is_registered("default_estimator")
    est = EmbeddingPerfEstimatorFactory.create("default_estimator", topology=topo)
    est.estimate(space, build_sharder_data_map(en.sharder_map))
    assert all(s.perf is not None and s.perf.fwd_compute > 0 for o in space for s in o.shards)
    dp = [o for o in space if o.sharding_type == "data_parallel"]
    assert all(s.perf.fwd_comms == 0 and s.perf.input_dist_comms == 0 for o in dp for s in o.shards)
    with pytest.raises(ValueError, match="unknown perf estimator"):
        EmbeddingPerfEstimatorFactory.create("nope", topology=topo)


def test_offload_stats_miss_rate_by_hand():
    s = EmbeddingOffloadStats(0.5, 100, torch.tensor([10.0, 5.0, 3.0, 2.0, 0.0]), 1000)
    # 20 lookups; a cache of 100 rows (first bin) serves none of the bins above it: miss = 1 - 10/20
    rates = EmbeddingOffloadStats.estimate_cache_miss_rate(torch.tensor([0, 100, 300, 1000]), s.hist, s.bins)
    torch.testing.assert_close(rates, torch.tensor([1.0, 0.5, 0.25, 0.0]))
    assert s.expected_miss_rate(0.0) == 1.0 and s.cacheability == 0.5 and s.expected_lookups == 100


def test_allocate_budget_by_hand():
    # two tables, bytes = a * clf + b with a = 100, b = 10; fused ceilings far away
    model = torch.tensor([[100.0, 10.0], [100.0, 10.0]])
    clfs = torch.tensor([0.1, 0.1])
    out = EmbeddingOffloadScaleupProposer.allocate_budget(model, torch.tensor([1e9, 1e9]), clfs, 60,
                                                          torch.tensor([1.0, 2.0]))
    # caches 10 + 20 and 10 + 40 bytes of 100
    torch.testing.assert_close(out, torch.tensor([0.3, 0.5]))


def test_offload_scaleup_grows_caches_within_hbm():
    model = make_ebc([200_000, 400_000], [128, 128])
    stats = {f"t{i}": EmbeddingOffloadStats(0.5, 1000, torch.tensor([10.0, 5.0, 3.0]), r)
             for i, r in enumerate([200_000, 400_000])}
    pc = {n: ParameterConstraints(sharding_types=["table_wise"], compute_kernels=["fused_uvm_caching"],
                                  cache_params=CacheParams(load_factor=0.1, stats=st)) for n, st in stats.items()}
    topo = Topology(world_size=2, compute_device="cuda", hbm_cap=140 * 1024 * 1024)
    planner = EmbeddingShardingPlanner(topology=topo, constraints=pc, proposer=EmbeddingOffloadScaleupProposer(),
                                       debug=False)
    planner.local_search = False
    plan = planner.plan(model, [EbcTestSharder()])
    clfs = [ps.cache_params.load_factor for ps in plan.plan[""].values()]
    assert all(0.1 < c < 1.0 for c in clfs)  # grown, but the tables do not fit whole


def test_calculate_shard_storages_matches_the_estimator():
    topo = Topology(world_size=2, compute_device="cuda")
    en = EmbeddingEnumerator(topo, batch_size=8)
    opt = [o for o in en.enumerate(make_ebc([1000], [64]), [EbcTestSharder()])
           if o.sharding_type == "row_wise" and o.compute_kernel == "fused"][0]
    got = calculate_shard_storages(
        build_sharder_data(EbcTestSharder()), "row_wise", opt.tensor, "cuda", "fused",
        [s.size for s in opt.shards], [8], 2, 2, [1.0], [1.0], 0.2, True, 8.0, 4.0,
    )
    assert got == [s.storage for s in opt.shards]


def test_comms_by_hand():
    from recsys_lib.distributed.planner.types import BasicCommsBandwidths

    cfg = HardwarePerfConfig()
    bws = BasicCommsBandwidths(inter_host_bw=1.0, intra_host_bw=10.0)
    # 4 ranks on 2 hosts: 4 pooled outputs per rank -> 16 outputs x 128 cols x 4 bytes cross hosts
    ctx = _ctx(sharding_type="row_wise", world_size=4, comms_bandwidths=bws)
    data = 4 * 4 * 128 * 4
    rw = get_embedding_perf_sharding_evaluator("row_wise")
    assert rw.compute_fwd_comms(ctx, cfg) == pytest.approx(data / 1.0)
    assert rw.compute_bwd_comms(ctx, cfg) == pytest.approx(data / 1.0 + data * 2.455 / 1000.0)
    # table-row-wise: within the host at 10, then half of it (L = 2) across hosts at 1
    twrw = get_embedding_perf_sharding_evaluator("table_row_wise")
    assert twrw.compute_fwd_comms(_ctx(sharding_type="table_row_wise", world_size=4, comms_bandwidths=bws), cfg) == \
        pytest.approx(data / 10.0 + data / 2 / 1.0)
    # data parallel: all-reduce of the 100 x 128 x 4-byte table plus the element-wise optimizer
    dp = get_embedding_perf_sharding_evaluator("data_parallel")
    table = 100 * 128 * 4
    assert dp.compute_bwd_comms(_ctx(sharding_type="data_parallel", world_size=4), cfg) == \
        pytest.approx(table * 3 / 4 / 1.0 + table * 9.22 / 1000.0)
    # ids: 3 x 4 per rank, 4 ranks, 8 bytes each, over the cross-host all-to-all
    assert rw.compute_input_dist_comms(ctx, cfg) == pytest.approx(12 * 4 * 8 / 1.0)
