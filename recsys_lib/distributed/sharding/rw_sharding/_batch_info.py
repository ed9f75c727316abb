"""Per-batch facts a row-split input dist hands to the output dist of the same rank.

The input dist sees this rank's original KJT; its output dist later needs two things derived from it: the bag
lengths (to divide MEAN partial sums once they are combined) and, for sequences, the unbucketize permutation.
The input dist's phase-1 awaitable exposes them as ``input_dist_facts``; the sharded module stores them in the
sharding's context (``EmbeddingShardingContext.input_dist_facts``), which it passes to the output dist. Nothing
is kept on the modules, so batches in flight (pipelines) cannot mix, and the lookup's input may be rebuilt in
between (feature processors do) without losing them.
"""

from dataclasses import dataclass
from typing import Any, List, Optional

import torch

from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass
class RowSplitBatch:
    """``divisor``: bag lengths of MEAN features (1 elsewhere) of this rank's batch, ``[B, F]`` (or one entry per
    bag for a variable batch), or None. ``unbucketize_permute``: position of each original id in the bucketized
    order (sequences), or None. ``bucketized_length_per_key``: ids per (bucket, feature) this rank sent
    (sequences: the return splits)."""

    divisor: Optional[torch.Tensor] = None
    unbucketize_permute: Optional[torch.Tensor] = None
    bucketized_length_per_key: Optional[List[int]] = None


def facts(sharding_ctx: Any) -> Optional[RowSplitBatch]:
    """The row-split facts recorded in a sharding context (None without a context or facts)."""
    return None if sharding_ctx is None else getattr(sharding_ctx, "input_dist_facts", None)


def require(sharding_ctx: Any, what: str) -> RowSplitBatch:
    batch = facts(sharding_ctx)
    if batch is None:
        raise RuntimeError(
            f"{what}: the sharding context carries no row-split batch facts; pass the context whose "
            f"input_dist_facts the sharded module set from this sharding's input dist"
        )
    return batch


class SplitsWithBatch(Awaitable[Awaitable[KeyedJaggedTensor]]):
    """Phase-1 awaitable of the input dist (split sizes in flight) exposing ``input_dist_facts``."""

    def __init__(self, inner: Any, batch: RowSplitBatch) -> None:
        super().__init__()
        self._inner = inner
        self.input_dist_facts = batch

    def _wait_impl(self) -> Any:
        return self._inner.wait()
