"""Unsharded values of a sharded state dict, for serving or for comparing with an unsharded model.

``state_dict_gather(src, dst)`` (TorchRec's ``torchrec.inference.state_dict_transform`` function, same
signature and behaviour): every rank calls it; for each key of ``dst``, a ``ShardedTensor`` of ``src`` is
gathered into ``dst[key]`` on rank 0 (other ranks pass their ``dst`` but it is not written), a plain tensor is
copied on every rank.

Example::

    dense = unsharded_model.state_dict()             # plain tensors, the shapes of the full tables
    state_dict_gather(dmp.state_dict(), dense)       # on rank 0: dense holds every table's full weight
"""

from typing import Any, Dict, List, Optional, Union

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed._parallel2d.placements import group_to_global


def gather_to_group_leader(value: ShardedTensor, out: Optional[torch.Tensor]) -> None:
    """The whole of ``value`` into ``out`` on rank 0 of its process group (``out``: ``None`` elsewhere).

    ``ShardedTensor.gather`` when the group is the world; for a sub-group (a 2-D sharding group, whose shards
    are placed on global ranks, which ``ShardedTensor.gather`` cannot index) each rank's local shards are sent to
    the group's first rank as objects."""
    pg = value._process_group
    if group_to_global(pg) is None:
        value.gather(dst=0, out=out)
        return
    pieces = [(list(s.metadata.shard_offsets), s.tensor.detach().cpu()) for s in value.local_shards()]
    leader = dist.get_rank(pg) == 0
    everyone: Optional[List[Any]] = [None] * dist.get_world_size(pg) if leader else None
    dist.gather_object(pieces, everyone, dst=dist.get_global_rank(pg, 0), group=pg)
    if out is None or everyone is None:
        return
    with torch.no_grad():
        for per_rank in everyone:
            for offsets, t in per_rank:
                out[tuple(slice(o, o + n) for o, n in zip(offsets, t.shape))].copy_(t)


def state_dict_gather(src: Dict[str, Union[torch.Tensor, ShardedTensor]], dst: Dict[str, torch.Tensor]) -> None:
    """Gathers ``src[key]`` into ``dst[key]`` for every key of ``dst`` (collective; see the module docstring).

    Args:
        src: this rank's (sharded) state dict.
        dst: unsharded tensors to fill, keyed like ``src``.
    """
    for key, dst_tensor in dst.items():
        if key not in src:
            raise KeyError(f"state_dict_gather: {key!r} is in dst but not in src")
        src_value = src[key]
        if isinstance(src_value, ShardedTensor):
            if list(src_value.size()) != list(dst_tensor.shape):
                raise ValueError(f"state_dict_gather: {key!r} is {list(src_value.size())} in src, "
                                 f"{list(dst_tensor.shape)} in dst")
            rank = dist.get_rank(src_value._process_group) if src_value._process_group is not None else dist.get_rank()
            out = torch.empty_like(dst_tensor) if rank == 0 else None
            gather_to_group_leader(src_value, out)
            if out is not None:
                with torch.no_grad():
                    dst_tensor.copy_(out)
        elif isinstance(src_value, torch.Tensor):
            with torch.no_grad():
                dst_tensor.copy_(src_value)
        else:
            raise TypeError(f"state_dict_gather: src[{key!r}] is a {type(src_value).__name__}, expected a tensor")


def state_dict_all_gather_keys(
    state_dict: Dict[str, Union[torch.Tensor, ShardedTensor]], pg: dist.ProcessGroup
) -> List[str]:
    """The union of every rank's state-dict keys, sorted (collective over ``pg``)."""
    everyone: List[List[str]] = [[] for _ in range(dist.get_world_size(pg))]
    dist.all_gather_object(everyone, list(state_dict.keys()), group=pg)
    return sorted({k for keys in everyone for k in keys})


def full_tensors(state_dict: Dict[str, Union[torch.Tensor, ShardedTensor]]) -> Dict[str, torch.Tensor]:
    """Every value unsharded on every rank: ``ShardedTensor`` s gathered to rank 0 then broadcast (collective;
    keys must be the same on every rank). For tests and small models; serving uses :func:`state_dict_gather`."""
    out: Dict[str, torch.Tensor] = {}
    for key in sorted(state_dict):
        value = state_dict[key]
        if isinstance(value, ShardedTensor):
            pg = value._process_group
            full = torch.zeros(list(value.size()), dtype=value.dtype)
            gather_to_group_leader(value, full if dist.get_rank(pg) == 0 else None)
            dist.broadcast(full, src=dist.get_global_rank(pg, 0) if pg is not None else 0, group=pg)
            out[key] = full
        else:
            out[key] = value.detach().clone()
    return out
