"""State-dict form of sharded managed-collision state: this rank's buffers as ``ShardedTensor`` s.

Each remapping buffer of rank ``r``'s MC module (sorted raw ids, their rows, eviction metadata) covers rank ``r``'s
rows ``[o_r, o_r + n_r)``; in the state dict it is the local shard of a ``ShardedTensor`` of the table's global
size along dim 0 (TorchRec's keys: ``_managed_collision_modules.<table>.<buffer>``). Per-rank bookkeeping
(``_output_segments_tensor``, ``_current_iter_tensor``) and non-persistent buffers stay plain tensors.
"""

from typing import Any, Iterator, List, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed._mc.layout import MCTableLayout
from recsys_lib.distributed._pool.state import row_sharded_tensor

_PER_RANK_BUFFERS = ("_output_segments_tensor", "_current_iter_tensor", "_scalar_logger._scalar_logger_steps",
                     "_hash_zch_bucket")


def sharded_buffer_names(module: nn.Module) -> List[str]:
    """Names (relative to ``module``) of the buffers and parameters sharded by rows."""
    out = [n for n, _ in module.named_buffers() if n not in _PER_RANK_BUFFERS and not _non_persistent(module, n)]
    return out + [n for n, _ in module.named_parameters()]


def _non_persistent(module: nn.Module, name: str) -> bool:
    *path, leaf = name.split(".")
    owner = module
    for part in path:
        owner = getattr(owner, part)
    return leaf in owner._non_persistent_buffers_set


def as_sharded_tensor(local: torch.Tensor, layout: MCTableLayout, rank: int, pg: Optional[dist.ProcessGroup]) -> Any:
    """``local`` (rows ``n_r`` along dim 0) as the rank-``rank`` shard of a ``ShardedTensor`` of ``R`` rows."""
    return row_sharded_tensor(local, layout.row_ranges, layout.rows, rank, pg)


def local_value(value: Any, key: str) -> Any:
    """The local shard of a loaded ``ShardedTensor`` (a plain tensor passes: it must hold this rank's rows)."""
    if isinstance(value, ShardedTensor):
        shards = value.local_shards()
        if len(shards) != 1:
            raise ValueError(f"state_dict[{key!r}]: expected one local shard, got {len(shards)}")
        return shards[0].tensor
    if isinstance(value, torch.Tensor):
        return value
    raise TypeError(f"state_dict[{key!r}]: expected a ShardedTensor or tensor, got {type(value).__name__}")


def iter_prefixed(prefix: str, table: str, names: List[str]) -> Iterator[str]:
    for n in names:
        yield f"{prefix}_managed_collision_modules.{table}.{n}"
