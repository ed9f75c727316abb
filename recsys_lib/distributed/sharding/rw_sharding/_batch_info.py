"""Per-batch facts a row-split input dist hands to the output dist of the same rank.

The input dist sees this rank's original KJT; its output dist later needs two things derived from it:
the bag lengths (to divide MEAN partial sums once they are combined) and, for sequences, the unbucketize
permutation. The sharded module passes the input dist's KJT to the lookup and the lookup's output to the
output dist, so the facts ride on those objects (attribute ``_recsys_row_split_batch``): the input dist
attaches them to the KJT it delivers, a forward hook on the lookup copies them onto its output. Nothing is
kept on the modules, so batches in flight (pipelines) cannot mix.
"""

from dataclasses import dataclass
from typing import Any, List, Optional

import torch
from torch import nn

from recsys_lib.distributed.types import Awaitable
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_ATTR = "_recsys_row_split_batch"


@dataclass
class RowSplitBatch:
    """``divisor``: ``[B, F]`` bag lengths (MEAN features; 1 elsewhere) of this rank's batch, or None.
    ``unbucketize_permute``: position of each original id in the bucketized order (sequences), or None.
    ``bucketized_length_per_key``: ids per (bucket, feature) this rank sent (sequences: the return splits)."""

    divisor: Optional[torch.Tensor] = None
    unbucketize_permute: Optional[torch.Tensor] = None
    bucketized_length_per_key: Optional[List[int]] = None


def attach(obj: Any, batch: RowSplitBatch) -> Any:
    setattr(obj, _ATTR, batch)
    return obj


def carried(obj: Any) -> Optional[RowSplitBatch]:
    return getattr(obj, _ATTR, None)


def _copy_to_output(module: nn.Module, args: Any, output: Any) -> None:
    batch = carried(args[0]) if args else None
    if batch is not None and isinstance(output, torch.Tensor):
        attach(output, batch)


def carry_through(lookup: nn.Module) -> nn.Module:
    """Registers the hook that copies the batch facts from a lookup's input KJT onto its output."""
    lookup.register_forward_hook(_copy_to_output)
    return lookup


def require(obj: Any, what: str) -> RowSplitBatch:
    batch = carried(obj)
    if batch is None:
        raise RuntimeError(
            f"{what}: the lookup output does not carry the row-split batch facts; pass the KJT delivered by this "
            f"sharding's input dist to its lookup unchanged (do not rebuild it between the stages)"
        )
    return batch


class TensorsWithBatch(Awaitable[KeyedJaggedTensor]):
    """Phase-2 awaitable of the input dist: the KJT all-to-all's result with the batch facts attached."""

    def __init__(self, inner: Any, batch: RowSplitBatch) -> None:
        super().__init__()
        self._inner = inner
        self._batch = batch
        self._stride_per_rank: Optional[List[int]] = getattr(inner, "_stride_per_rank", None)

    def _wait_impl(self) -> KeyedJaggedTensor:
        return attach(self._inner.wait(), self._batch)


class SplitsWithBatch(Awaitable[Awaitable[KeyedJaggedTensor]]):
    """Phase-1 awaitable of the input dist (split sizes in flight); ``wait()`` gives :class:`TensorsWithBatch`."""

    def __init__(self, inner: Any, batch: RowSplitBatch) -> None:
        super().__init__()
        self._inner = inner
        self._batch = batch

    def _wait_impl(self) -> TensorsWithBatch:
        return TensorsWithBatch(self._inner.wait(), self._batch)
