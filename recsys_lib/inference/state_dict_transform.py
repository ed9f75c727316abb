"""Moving / gathering state dicts that may hold ``ShardedTensor`` values (e.g. to build an inference model)."""

from typing import Dict, Union

import torch
import torch.distributed as dist
from torch.distributed import ProcessGroup
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor

# Written once, with the checkpoint helpers (shape-checked, subgroup-aware); served at TorchRec's path here.
from recsys_lib.distributed._checkpoint.gather import state_dict_all_gather_keys, state_dict_gather  # noqa: F401


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
