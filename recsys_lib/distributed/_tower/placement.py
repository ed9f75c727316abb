"""Where a tower lives (pure): its host, and its plan rewritten for that host's ranks.

A tower's tables are planned table-row-wise or table-column-wise on the ranks of one host; on that host they are
sharded row-wise / column-wise over the host's ``L`` ranks (local ranks ``r % L``)::

    L = 2, t0 TWRW on ranks [2, 3]   ->   host 1;  t0 RW on local ranks [0, 1]
"""

import copy
from typing import Dict, List, Mapping

from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.sharding.strategy import host_local_sharding_type


def tower_host(plan: Mapping[str, ParameterSharding], local_size: int) -> int:
    """The one host holding every table of ``plan``; ``ValueError`` naming the ranks otherwise."""
    ranks = sorted({r for ps in plan.values() for r in (ps.ranks or [])})
    hosts = {r // local_size for r in ranks}
    if len(hosts) != 1:
        raise ValueError(f"embedding tower: its tables must lie on one host of {local_size} ranks, got ranks {ranks} "
                         f"({dict(plan)})")
    return hosts.pop()


def host_local_plan(plan: Mapping[str, ParameterSharding], local_size: int) -> Dict[str, ParameterSharding]:
    """A copy of ``plan`` for the host's ranks: one-level sharding types, local ranks and placements."""
    out: Dict[str, ParameterSharding] = {}
    for name, ps in plan.items():
        local = copy.deepcopy(ps)
        local.sharding_type = host_local_sharding_type(ps.sharding_type)
        if local.ranks:
            local.ranks = [r % local_size for r in local.ranks]
        if isinstance(local.sharding_spec, EnumerableShardingSpec):
            shards: List[ShardMetadata] = []
            for md in local.sharding_spec.shards:
                device = md.placement.device()
                shards.append(ShardMetadata(list(md.shard_offsets), list(md.shard_sizes),
                                            f"rank:{int(md.placement.rank()) % local_size}/{device}"))
            local.sharding_spec = EnumerableShardingSpec(shards)
        out[name] = local
    return out
