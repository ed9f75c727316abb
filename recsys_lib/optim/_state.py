"""In-place loading of one optimizer-state value (plain tensor, ShardedTensor or DTensor)."""

import copy
from typing import Any

import torch
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torch.distributed.tensor import DTensor


def _copy_shards_from_full(target: ShardedTensor, full: torch.Tensor, where: str, apply: bool = True) -> None:
    # Each local shard takes its block of the unsharded tensor, located by the shard metadata.
    if list(full.shape) != list(target.size()):
        raise ValueError(f"{where}: checkpoint tensor has shape {list(full.shape)}, state has {list(target.size())}")
    for shard in target.local_shards():
        block = full
        for dim, (off, size) in enumerate(zip(shard.metadata.shard_offsets, shard.metadata.shard_sizes)):
            block = block.narrow(dim, off, size)
        if apply:
            shard.tensor.detach().copy_(block)


def load_state_value(current: Any, new: Any, where: str, apply: bool = True) -> Any:
    """Copies ``new`` into ``current`` in place when ``current`` is a tensor; returns the value to keep.

    Args:
        current: the live state value (tensor, ShardedTensor, DTensor or any Python value).
        new: the value read from a checkpoint.
        where: ``"<param key>/<state key>"``, used in error messages.
        apply: ``False`` only checks (raises what a load would raise) and copies nothing.

    Returns:
        ``current`` (updated in place) for tensors, else a deep copy of ``new``.
    """
    if isinstance(current, ShardedTensor):
        if isinstance(new, ShardedTensor):
            mine, theirs = current.local_shards(), new.local_shards()
            if len(mine) != len(theirs):
                raise ValueError(f"{where}: checkpoint has {len(theirs)} local shards, state has {len(mine)}")
            for a, b in zip(mine, theirs):
                if a.tensor.shape != b.tensor.shape:
                    raise ValueError(
                        f"{where}: local shard shape {list(b.tensor.shape)} != state shard {list(a.tensor.shape)}"
                    )
                if apply:
                    a.tensor.detach().copy_(b.tensor)
        elif isinstance(new, torch.Tensor):
            _copy_shards_from_full(current, new, where, apply)
        else:
            raise TypeError(f"{where}: expected a tensor for ShardedTensor state, got {type(new).__name__}")
        return current
    if isinstance(current, DTensor):
        if not isinstance(new, DTensor):
            raise TypeError(f"{where}: expected a DTensor for DTensor state, got {type(new).__name__}")
        if apply:
            current.to_local().detach().copy_(new.to_local())
        return current
    if isinstance(current, torch.Tensor):
        if isinstance(new, (ShardedTensor, DTensor)):
            raise TypeError(f"{where}: cannot load a {type(new).__name__} into a plain tensor state")
        new_t = torch.as_tensor(new)
        if new_t.shape != current.shape:
            raise ValueError(f"{where}: checkpoint tensor has shape {list(new_t.shape)}, state has {list(current.shape)}")
        if apply:
            current.detach().copy_(new_t)
        return current
    return copy.deepcopy(new)
