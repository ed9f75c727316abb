"""Shard placements on global ranks.

Sharded modules lay tables out over *their* process group's ranks (group ranks ``0..W-1``), while a
``ShardedTensor`` names each shard's owner by its *global* rank. In a 1-D job the two agree; under 2-D
parallelism group rank ``r`` of sharding group ``[1, 3]`` is global rank ``[1, 3][r]``. :func:`sharded_tensor`
builds a ``ShardedTensor`` from group-rank metadata, rewriting the placements (the tables' own metadata is
left in group ranks, which the layouts use)::

    sharding group [1, 3], shard placed "rank:1/cpu"  ->  ShardedTensor shard placed "rank:3/cpu"
"""

from typing import List, Optional

import torch.distributed as dist
from torch.distributed.remote_device import _remote_device
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor, ShardedTensorMetadata


def group_to_global(pg: Optional[dist.ProcessGroup]) -> Optional[List[int]]:
    """``out[group rank]`` = global rank, or ``None`` when they are the same (no group, or the world group)."""
    if pg is None or not dist.is_initialized():
        return None
    ranks = dist.get_process_group_ranks(pg)
    return None if ranks == list(range(dist.get_world_size())) else ranks


def _md(md: ShardMetadata, ranks: List[int]) -> ShardMetadata:
    placement = md.placement
    assert placement is not None and placement.rank() is not None, md
    device = placement.device()
    where = f"rank:{ranks[int(placement.rank())]}/{device}" if device is not None else f"rank:{ranks[int(placement.rank())]}"
    return ShardMetadata(list(md.shard_offsets), list(md.shard_sizes), _remote_device(where))


def sharded_tensor(
    local_shards: List[Shard], global_md: ShardedTensorMetadata, pg: Optional[dist.ProcessGroup]
) -> ShardedTensor:
    """``ShardedTensor`` over ``pg`` from shards whose placements name ``pg``'s group ranks."""
    ranks = group_to_global(pg)
    if ranks is not None:
        local_shards = [Shard(tensor=s.tensor, metadata=_md(s.metadata, ranks)) for s in local_shards]
        global_md = ShardedTensorMetadata(
            [_md(md, ranks) for md in global_md.shards_metadata], global_md.size, global_md.tensor_properties
        )
    return ShardedTensor._init_from_local_shards_and_global_metadata(local_shards, global_md, process_group=pg)
