"""Rank layout of 2-D parallelism (pure functions) and the 2-D intra/cross-node process groups.

``W`` ranks form ``W / G`` sharding groups of ``G`` ranks each (``G`` = ``sharding_group_size``); the ranks
holding the same shard in different sharding groups form a replica group. With the default layout
(``use_inter_host_allreduce=False``) a sharding group takes every ``W / G``-th rank, so replicas sit on
neighbouring ranks (one host)::

    W = 4, G = 2:   sharding groups [0, 2], [1, 3]      replica groups [0, 1], [2, 3]
    inter-host:     sharding groups [0, 1], [2, 3]      replica groups [0, 2], [1, 3]

A plan made for ``G`` ranks names group ranks ``0..G-1``; on a rank of sharding group ``g`` the group rank
``r`` is the global rank ``peers(g)[r]`` (:func:`global_rank_of`).
"""

import copy
from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.distributed.remote_device import _remote_device
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec


def check_sizes(world_size: int, sharding_group_size: int) -> None:
    """``ValueError`` unless ``sharding_group_size`` is positive and divides ``world_size``."""
    if sharding_group_size < 1 or world_size < 1 or world_size % sharding_group_size != 0:
        raise ValueError(
            f"2-D parallel: sharding_group_size={sharding_group_size} must be >= 1 and divide world_size={world_size}"
        )


def peer_matrix(world_size: int, sharding_group_size: int, use_inter_host_allreduce: bool = False) -> List[List[int]]:
    """``out[g]`` = the global ranks of sharding group ``g`` in group-rank order (pure; see the module docstring).

    Example::

        peer_matrix(4, 2)        == [[0, 2], [1, 3]]
        peer_matrix(4, 2, True)  == [[0, 1], [2, 3]]
    """
    check_sizes(world_size, sharding_group_size)
    groups = world_size // sharding_group_size
    if use_inter_host_allreduce:
        return [list(range(g * sharding_group_size, (g + 1) * sharding_group_size)) for g in range(groups)]
    return [[groups * r + g for r in range(sharding_group_size)] for g in range(groups)]


def group_of(global_rank: int, matrix: List[List[int]]) -> int:
    """Index of the sharding group holding ``global_rank``."""
    for g, peers in enumerate(matrix):
        if global_rank in peers:
            return g
    raise ValueError(f"2-D parallel: rank {global_rank} is in no sharding group of {matrix}")


def global_rank_of(group_rank: int, global_rank: int, matrix: List[List[int]]) -> int:
    """The global rank that plays group rank ``group_rank`` in the sharding group of ``global_rank``."""
    return matrix[group_of(global_rank, matrix)][group_rank]


def remap_plan(plan: Any, global_rank: int, matrix: List[List[int]], device_type: str) -> None:
    """Rewrites ``plan`` (a ``ShardingPlan`` made for one sharding group) in place: every rank and every shard
    placement names the global rank of this rank's sharding group (TorchRec's ``DMPCollection`` plan)."""
    for module_plan in plan.plan.values():
        for ps in module_plan.values():
            if ps.ranks is not None:
                ps.ranks = [global_rank_of(r, global_rank, matrix) for r in ps.ranks]
            spec = ps.sharding_spec
            if isinstance(spec, EnumerableShardingSpec):
                for md in spec.shards:
                    new_rank = global_rank_of(md.placement.rank(), global_rank, matrix)
                    device = md.placement.device()
                    kind = device.type if device is not None else device_type
                    if kind != "cpu":  # an accelerator: the global rank's local device, as TorchRec places it
                        from recsys_lib.distributed.comm import get_local_size

                        kind = f"{kind}:{new_rank % get_local_size(sum(len(p) for p in matrix))}"
                    md.placement = _remote_device(f"rank:{new_rank}/{kind}")


def group_local_plan(plan: Any) -> Any:
    """A deep copy of ``plan`` (kept in group ranks while the user's plan is remapped)."""
    return copy.deepcopy(plan)


def intra_and_cross_groups(
    world_size: int, sharding_group_size: int, devices_per_node: int, use_inter_host_allreduce: bool
) -> Tuple[List[List[int]], List[List[int]]]:
    """(intra groups, cross groups) of global ranks over all sharding groups (pure).

    Each sharding group is cut into blocks of ``devices_per_node`` consecutive group ranks (the "intra"
    groups); the group ranks at the same position in those blocks form the "cross" groups::

        W = 8, G = 4, devices_per_node = 2:  sharding groups [0, 2, 4, 6], [1, 3, 5, 7]
        intra: [0, 2] [4, 6] [1, 3] [5, 7]      cross: [0, 4] [2, 6] [1, 5] [3, 7]
    """
    if devices_per_node < 1 or sharding_group_size % devices_per_node != 0:
        raise ValueError(
            f"2-D parallel: node group size {devices_per_node} must divide sharding_group_size={sharding_group_size}"
        )
    intra: List[List[int]] = []
    cross: List[List[int]] = []
    for peers in peer_matrix(world_size, sharding_group_size, use_inter_host_allreduce):
        blocks = [peers[i:i + devices_per_node] for i in range(0, len(peers), devices_per_node)]
        intra += blocks
        cross += [[block[c] for block in blocks] for c in range(devices_per_node)]
    return intra, cross


def node_groups_2d(
    env: Any, device: Optional[torch.device] = None
) -> Tuple[Optional[dist.ProcessGroup], Optional[dist.ProcessGroup]]:
    """This rank's (intra, cross) groups inside its sharding group (behind ``comm.intra_and_cross_node_pg_2D``).

    Created on the first call (a collective over the global group: every rank creates every group, in the same
    order) and cached on ``env``; ``(None, None)`` on a ``meta`` device.

    Args:
        env: a ``ShardingEnv2D``; its ``node_group_size`` (default ``comm.get_local_size``) sets the intra size.
        device: the compute device.
    """
    if device is not None and device.type == "meta":
        return None, None
    cached = env._node_groups_2d
    if cached is not None:
        return cached
    from recsys_lib.distributed.comm import get_local_size

    per_node = env.node_group_size if env.node_group_size else get_local_size(env.global_world_size)
    if env.world_size % per_node != 0:
        raise ValueError(
            f"intra_and_cross_node_pg_2D: node group size {per_node} does not divide the sharding group size "
            f"{env.world_size}"
        )
    intra_ranks, cross_ranks = intra_and_cross_groups(
        env.global_world_size, env.world_size, per_node, env.use_inter_host_allreduce
    )
    backend = dist.get_backend(env.sharding_pg)
    me = dist.get_rank(env.process_group)
    found: List[Optional[dist.ProcessGroup]] = [None, None]
    for slot, all_ranks in enumerate((intra_ranks, cross_ranks)):
        for ranks in all_ranks:
            group = dist.new_group(ranks, backend=backend)
            if me in ranks:
                found[slot] = group
    env._node_groups_2d = (found[0], found[1])
    return env._node_groups_2d
