import pytest
import torch.distributed as dist

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from recsys_lib.distributed.planner.planners import to_sharding_plan
from recsys_lib.distributed.planner.stats import NoopEmbeddingStats
from recsys_lib.distributed.planner.types import PlannerError, PlannerErrorType
from recsys_lib.distributed.test_utils import run_multiprocess
from tests.distributed.planner._helpers import EbcTestSharder, TwoTower, make_ebc


def _plan(topology, module, constraints=None, **kw):
    planner = EmbeddingShardingPlanner(topology=topology, batch_size=512, constraints=constraints,
                                       stats=NoopEmbeddingStats(), **kw)
    return planner, planner.plan(module, [EbcTestSharder()])


def _assert_valid(plan, module_path, ebc, world_size):
    """Every sharded table's shards tile it exactly once; data-parallel tables are on every rank."""
    for name, bag in ebc.embedding_bags.items():
        ps = plan.plan[module_path][name]
        rows, cols = bag.weight.shape
        if ps.sharding_spec is None:
            assert ps.ranks == list(range(world_size))
            continue
        boxes = [(md.shard_offsets, md.shard_sizes) for md in ps.sharding_spec.shards]
        # inside the table, no two shards overlap, and together they cover its area: an exact tiling
        assert all(0 <= ro and ro + r <= rows and 0 <= co and co + c <= cols for (ro, co), (r, c) in boxes), name
        assert sum(r * c for _, (r, c) in boxes) == rows * cols, name
        for i, ((ro1, co1), (r1, c1)) in enumerate(boxes):
            for (ro2, co2), (r2, c2) in boxes[i + 1:]:
                overlap = min(ro1 + r1, ro2 + r2) > max(ro1, ro2) and min(co1 + c1, co2 + c2) > max(co1, co2)
                assert not overlap, name
        assert [int(str(md.placement).split("/")[0][5:]) for md in ps.sharding_spec.shards] == ps.ranks


def test_reference_four_tables_two_cuda_ranks():
    # reference §2.8: rows 1e3..1e6, dims 64/128, W=2 cuda, batch 512 → all table_wise/fused, ranks [0, 1, 1, 0]
    ebc = make_ebc([1000, 10_000, 100_000, 1_000_000], [64, 128, 64, 128])
    planner, plan = _plan(Topology(world_size=2, compute_device="cuda"), ebc)
    got = [(plan.plan[""][f"t{i}"].sharding_type, plan.plan[""][f"t{i}"].compute_kernel) for i in range(4)]
    assert got == [("table_wise", "fused")] * 4
    assert [plan.plan[""][f"t{i}"].ranks[0] for i in range(4)] == [0, 1, 1, 0]
    assert planner._num_proposals >= planner._num_plans > 0 and len(planner._best_plan) == 4
    _assert_valid(plan, "", ebc, 2)


def test_one_cpu_rank_picks_data_parallel_for_small_tables_unless_constrained():
    # reference §4: small tables on one CPU rank → data_parallel/dense; table_wise constraint → table_wise/fused
    ebc = make_ebc([100, 200], [8, 16])
    _, plan = _plan(Topology(world_size=1, compute_device="cpu"), ebc)
    assert {(p.sharding_type, p.compute_kernel) for p in plan.plan[""].values()} == {("data_parallel", "dense")}
    assert all(p.sharding_spec is None and p.ranks == [0] for p in plan.plan[""].values())
    pcs = {t: ParameterConstraints(sharding_types=["table_wise"]) for t in ("t0", "t1")}
    _, tw = _plan(Topology(world_size=1, compute_device="cpu"), ebc, pcs)
    assert {(p.sharding_type, p.compute_kernel) for p in tw.plan[""].values()} == {("table_wise", "fused")}
    assert str(tw.plan[""]["t0"].sharding_spec.shards[0].placement) == "rank:0/cpu"


@pytest.mark.parametrize("device,world,local", [("cuda", 4, 2), ("cpu", 2, 2), ("cuda", 8, 4)])
def test_plans_are_valid_tilings(device, world, local):
    ebc = make_ebc([7, 1000, 50_000, 300, 2_000_000], [8, 256, 64, 512, 128])
    _, plan = _plan(Topology(world_size=world, compute_device=device, local_world_size=local), ebc)
    _assert_valid(plan, "", ebc, world)


def test_nested_module_plan_is_keyed_by_module_path():
    model = TwoTower([100, 100], [8, 8])
    _, plan = _plan(Topology(world_size=2, compute_device="cuda"), model)
    assert list(plan.plan) == ["sparse.ebc"] and set(plan.plan["sparse.ebc"]) == {"t0", "t1"}


def test_insufficient_storage_names_the_table_and_the_shortfall():
    ebc = make_ebc([100, 4_000_000], [8, 128])  # t1 alone is ~2 GB
    topo = Topology(world_size=2, compute_device="cuda", hbm_cap=1024 ** 3)
    with pytest.raises(PlannerError, match=r"short by .*'t1'|'t1'.*short by") as e:
        _plan(topo, ebc, {"t1": ParameterConstraints(sharding_types=["table_wise"], compute_kernels=["fused"])})
    assert e.value.error_type == PlannerErrorType.INSUFFICIENT_STORAGE


def test_tight_memory_moves_tables_to_uvm_or_splits_them():
    ebc = make_ebc([100, 4_000_000], [8, 128])
    topo = Topology(world_size=2, compute_device="cuda", hbm_cap=1024 ** 3)
    _, plan = _plan(topo, ebc)
    t1 = plan.plan[""]["t1"]
    assert t1.compute_kernel != "fused" or t1.sharding_type in ("row_wise", "table_row_wise", "column_wise",
                                                                 "table_column_wise", "grid_shard")


def test_to_sharding_plan_requires_placed_shards():
    ebc = make_ebc([10], [8])
    planner, _ = _plan(Topology(world_size=2, compute_device="cuda"), ebc)
    opts = planner._best_plan
    opts[0].shards[0].rank = None
    with pytest.raises(PlannerError, match="unplaced"):
        to_sharding_plan(opts, Topology(world_size=2, compute_device="cuda"))


def test_timeout_and_callbacks():
    ebc = make_ebc([10, 20], [8, 8])
    seen = []

    def cb(options):
        seen.append(len(options))
        return options

    _, plan = _plan(Topology(world_size=2, compute_device="cuda"), ebc, callbacks=[cb], timeout_seconds=60)
    assert seen == [2] and set(plan.plan[""]) == {"t0", "t1"}
    with pytest.raises(ValueError, match="timeout_seconds"):
        EmbeddingShardingPlanner(topology=Topology(world_size=1, compute_device="cpu"), timeout_seconds=0)


def _collective(rank, world_size):
    ebc = make_ebc([1000, 10_000, 100_000], [64, 64, 128])
    # rank 1 asks for something else: collective_plan must still return rank 0's plan everywhere
    pcs = None if rank == 0 else {t: ParameterConstraints(sharding_types=["column_wise"]) for t in ("t0", "t1", "t2")}
    planner = EmbeddingShardingPlanner(topology=Topology(world_size=2, compute_device="cpu"), constraints=pcs,
                                       stats=NoopEmbeddingStats())
    plan = planner.collective_plan(ebc, [EbcTestSharder()], dist.GroupMember.WORLD)
    summary = {t: (p.sharding_type, p.compute_kernel, p.ranks) for t, p in plan.plan[""].items()}
    local = planner.plan(ebc, [EbcTestSharder()])
    impossible = {"t0": ParameterConstraints(sharding_types=["row_wise"])}  # not on cpu
    bad = EmbeddingShardingPlanner(topology=Topology(world_size=2, compute_device="cpu"),
                                   constraints=impossible if rank == 0 else None, stats=NoopEmbeddingStats())
    try:
        bad.collective_plan(ebc, [EbcTestSharder()])
        error = None
    except PlannerError as e:
        error = str(e)
    return summary, {t: p.sharding_type for t, p in local.plan[""].items()}, error


@pytest.mark.dist
def test_collective_plan_is_rank_zeros_plan_on_every_rank():
    (s0, local0, err0), (s1, local1, err1) = run_multiprocess(_collective, 2)
    assert s0 == s1
    assert set(local1.values()) == {"column_wise"} and {v[0] for v in s1.values()} != {"column_wise"}
    assert err0 is not None and err0 == err1 and "'t0'" in err0
