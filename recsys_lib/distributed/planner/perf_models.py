"""Perf models: rate a placed plan (lower is better)."""

from typing import Dict, List

from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.types import PerfModel, ShardingOption
from recsys_lib.distributed.planner.types import PerfModel, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner._hardware import Perf, Storage  # noqa: F401


def per_rank_perf(plan: List[ShardingOption], world_size: int) -> List[float]:
    """Summed ``shard.perf.total`` per rank (ms)."""
    perfs = [0.0] * world_size
    for option in plan:
        for shard in option.shards:
            if shard.rank is not None and shard.perf is not None:
                perfs[shard.rank] += shard.perf.total
    return perfs


class NoopPerfModel(PerfModel):
    """Rating = the busiest rank's summed shard perf (the step waits for the slowest rank)."""

    def __init__(self, topology: Topology) -> None:
        self._topology = topology

    def rate(self, plan: List[ShardingOption]) -> float:
        return max(per_rank_perf(plan, self._topology.world_size))


class NoopStorageModel(PerfModel):
    """Rating = the fullest rank's summed shard storage (HBM, or DDR on a cpu topology), in bytes."""

    def __init__(self, topology: Topology) -> None:
        self._topology = topology

    def rate(self, plan: List[ShardingOption]) -> float:
        kind = "ddr" if self._topology.compute_device == "cpu" else "hbm"
        used: Dict[int, int] = {}
        for option in plan:
            for shard in option.shards:
                if shard.rank is not None and shard.storage is not None:
                    used[shard.rank] = used.get(shard.rank, 0) + getattr(shard.storage, kind)
        return float(max(used.values(), default=0))
