import importlib.util

import pytest

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
from recsys_lib.distributed.planner.perf_models import per_rank_perf
from recsys_lib.distributed.planner.report import PlanReport, plan_report
from recsys_lib.distributed.planner.stats import NoopEmbeddingStats
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise, table_wise
from recsys_lib.distributed.types import ShardingPlan
from tests.distributed.planner._helpers import EbcTestSharder, make_ebc


def _planned(topo, ebc):
    planner = EmbeddingShardingPlanner(topology=topo, stats=NoopEmbeddingStats())
    return planner, planner.plan(ebc, [EbcTestSharder()])


def test_report_of_the_planners_plan_matches_its_estimates():
    topo = Topology(world_size=2, compute_device="cuda")
    ebc = make_ebc([1000, 10_000, 100_000, 1_000_000], [64, 128, 64, 128])
    planner, plan = _planned(topo, ebc)
    rep = plan_report(plan, topo, module=ebc, sharders=[EbcTestSharder()])
    assert rep.total_ms == pytest.approx(per_rank_perf(planner._best_plan, 2))
    storage = [0, 0]
    for o in planner._best_plan:
        for s in o.shards:
            storage[s.rank] += s.storage.hbm
    assert rep.hbm_bytes == storage
    assert sorted(t for ts in rep.tables for t in ts) == ["t0", "t1", "t2", "t3"]
    text = rep.to_text()
    assert "max rank" in text and text.count("\n") == 3


def test_report_of_a_hand_written_plan_without_module():
    topo = Topology(world_size=2, compute_device="cuda")
    ebc = make_ebc([10, 20], [8, 8])
    module_plan = construct_module_sharding_plan(
        ebc, {"t0": table_wise(rank=1, compute_kernel="fused"), "t1": row_wise(compute_kernel="fused")},
        sharder=EbcTestSharder(), local_size=2, world_size=2,
        device_type="cuda",
    )
    plan = ShardingPlan({"": module_plan})
    rep = plan_report(plan, topo)
    assert rep.tables == [["t1"], ["t0", "t1"]]
    with_module = plan_report(plan, topo, module=ebc, sharders=[EbcTestSharder()])
    assert rep.total_ms == pytest.approx(with_module.total_ms)
    assert all(c > 0 for c in rep.comms_ms) and rep.hbm_bytes[1] > rep.hbm_bytes[0]


def test_data_parallel_needs_the_module():
    topo = Topology(world_size=1, compute_device="cpu")
    ebc = make_ebc([10], [8])
    _, plan = _planned(topo, ebc)
    assert plan.plan[""]["t0"].sharding_type == "data_parallel"
    with pytest.raises(ValueError, match="'t0'.*module="):
        plan_report(plan, topo)
    rep = plan_report(plan, topo, module=ebc, sharders=[EbcTestSharder()])
    assert rep.ddr_bytes[0] > 10 * 8 * 4 and rep.hbm_bytes == [0]


def test_png_needs_matplotlib(tmp_path):
    rep = PlanReport([1.0, 2.0], [0.5, 0.5], [0, 0], [0, 0], [["a"], ["b"]])
    path = str(tmp_path / "r.png")
    if importlib.util.find_spec("matplotlib") is None:
        with pytest.raises(ImportError, match="matplotlib"):
            rep.save_png(path)
    else:
        assert rep.save_png(path) == path and (tmp_path / "r.png").stat().st_size > 0
