"""Batched (table-batched, FBGEMM TBE) embedding kernels: TorchRec's public path.

* pooled: :class:`BaseBatchedEmbeddingBag`, :class:`BatchedFusedEmbeddingBag`, :class:`BatchedDenseEmbeddingBag`
  (``_tbe/pooled.py``)
* sequence: :class:`BaseBatchedEmbedding`, :class:`BatchedFusedEmbedding`, :class:`BatchedDenseEmbedding`
  (``_tbe/sequence.py``; correct on CPU for every kernel, see its module docstring)
* :class:`EmbeddingFusedOptimizer` (``_tbe/fused_optimizer.py``): the keyed view of the in-backward optimizer
"""

from recsys_lib.distributed._tbe.pooled import (  # noqa: F401
    BaseBatchedEmbeddingBag,
    BatchedDenseEmbeddingBag,
    BatchedFusedEmbeddingBag,
)
from recsys_lib.distributed._tbe.sequence import (  # noqa: F401
    BaseBatchedEmbedding,
    BatchedDenseEmbedding,
    BatchedFusedEmbedding,
)
from recsys_lib.distributed._tbe.fused_optimizer import EmbeddingFusedOptimizer  # noqa: F401
from recsys_lib.distributed._tbe.fully_sharded import (  # noqa: F401
    ReduceScatterResizeAwaitable,
    ShardedBatchedFusedEmbedding,
    ShardedBatchedFusedEmbeddingBag,
)
from recsys_lib.distributed.composable.table_batched_embedding_slice import TableBatchedEmbeddingSlice  # noqa: F401

__all__ = [
    "BaseBatchedEmbedding",
    "BaseBatchedEmbeddingBag",
    "BatchedDenseEmbedding",
    "BatchedDenseEmbeddingBag",
    "BatchedFusedEmbedding",
    "BatchedFusedEmbeddingBag",
    "EmbeddingFusedOptimizer",
    "ReduceScatterResizeAwaitable",
    "ShardedBatchedFusedEmbedding",
    "ShardedBatchedFusedEmbeddingBag",
    "TableBatchedEmbeddingSlice",
]
