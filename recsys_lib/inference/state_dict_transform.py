"""Moving / gathering state dicts that may hold ``ShardedTensor`` values (e.g. to build an inference model)."""

from typing import Dict, List, Union

import torch
import torch.distributed as dist
from torch.distributed import ProcessGroup
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor


def state_dict_gather(src: Dict[str, Union[torch.Tensor, ShardedTensor]], dst: Dict[str, torch.Tensor]) -> None:
    """Fill each ``dst[key]`` from ``src[key]``: plain tensors are copied; a ``ShardedTensor`` is gathered into
    ``dst[key]`` on rank 0 (a collective: every rank calls it)."""
    for key, out in dst.items():
        if key not in src:
            raise KeyError("state_dict_gather: key '" + key + "' is missing from the source state dict")
        value = src[key]
        if isinstance(value, ShardedTensor):
            value.gather(out=out if dist.get_rank() == 0 else None, dtype=out.dtype)
        elif isinstance(value, torch.Tensor):
            out.copy_(value)
        else:
            raise ValueError("state_dict_gather: key '" + key + "' holds unsupported type " + type(value).__name__)


def state_dict_all_gather_keys(state_dict: Dict[str, Union[torch.Tensor, ShardedTensor]], pg: ProcessGroup) -> List[str]:
    """The sorted union of every rank's state-dict keys."""
    per_rank: List[List[str]] = [[] for _ in range(dist.get_world_size(pg))]
    dist.all_gather_object(per_rank, list(state_dict.keys()), pg)
    return sorted({k for keys in per_rank for k in keys})


def state_dict_to_device(
    state_dict: Dict[str, Union[torch.Tensor, ShardedTensor]], pg: ProcessGroup, device: torch.device
) -> Dict[str, Union[torch.Tensor, ShardedTensor]]:
    """Copy a state dict to ``device``; ``ShardedTensor`` local shards move, keeping their offsets. Keys present
    only on other ranks become empty ``ShardedTensor`` entries here (the keys agree across ranks afterwards)."""
    out: Dict[str, Union[torch.Tensor, ShardedTensor]] = {}
    for key in state_dict_all_gather_keys(state_dict, pg):
        if key not in state_dict:
            out[key] = ShardedTensor._init_from_local_shards([], [], process_group=pg)
            continue
        value = state_dict[key]
        if isinstance(value, ShardedTensor):
            shards = [
                Shard.from_tensor_and_offsets(s.tensor.to(device), s.metadata.shard_offsets, dist.get_rank(pg))
                for s in value.local_shards()
            ]
            out[key] = ShardedTensor._init_from_local_shards(shards, value.metadata().size, process_group=pg)
        elif isinstance(value, torch.Tensor):
            out[key] = value.to(device)
        else:
            raise ValueError("state_dict_to_device: key '" + key + "' holds unsupported type " + type(value).__name__)
    return out
