import logging

from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
from recsys_lib.distributed.planner.stats import EmbeddingStats, round_to_one_sigfig
from tests.distributed.planner._helpers import EbcTestSharder, make_ebc


def test_stats_report_layout(caplog):
    stats = EmbeddingStats()
    planner = EmbeddingShardingPlanner(topology=Topology(world_size=2, compute_device="cuda"), stats=stats)
    with caplog.at_level(logging.INFO, logger="recsys_lib.distributed.planner.stats"):
        planner.plan(make_ebc([1000, 10_000, 100_000, 1_000_000], [64, 128, 64, 128]), [EbcTestSharder()])
    lines = stats.last_report
    assert lines[0] == lines[-1] and set(lines[0]) == {"#"}
    text = "\n".join(lines)
    assert f"--- Evaluated {planner._num_proposals} proposal(s), found {planner._num_plans} possible plan(s)" in text
    header = next(line for line in lines if "Rank" in line and "HBM (GB)" in line)
    for col in ("Perf (ms)", "Input (MB)", "Output (MB)", "Shards"):
        assert col in header
    rank_rows = [line for line in lines if line.startswith("# 0 ") or line.startswith("# 1 ")]
    assert len(rank_rows) == 2 and all("TW: 2" in r for r in rank_rows)
    for col in ("FQN", "Sharding", "Compute Kernel", "Storage (HBM, DDR)", "Hash Size", "Ranks"):
        assert col in text
    assert "Batch Size: 512" in text and "Compute Kernels Count: fused: 4" in text
    assert any("Planner Statistics" in r.message for r in caplog.records)


def test_round_to_one_sigfig():
    assert round_to_one_sigfig(0.01234) == "0.01"
    assert round_to_one_sigfig(1860.0) == "2000"
    assert round_to_one_sigfig(0.0) == "0"
