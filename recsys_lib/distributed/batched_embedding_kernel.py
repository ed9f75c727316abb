"""Batched (table-batched, FBGEMM TBE) embedding kernels: TorchRec's public path.

* pooled: :class:`BaseBatchedEmbeddingBag`, :class:`BatchedFusedEmbeddingBag`, :class:`BatchedDenseEmbeddingBag`
  (``_tbe/pooled.py``)
* sequence: :class:`BaseBatchedEmbedding`, :class:`BatchedFusedEmbedding`, :class:`BatchedDenseEmbedding`
  (``_tbe/sequence.py``; correct on CPU for every kernel, see its module docstring)
* :class:`EmbeddingFusedOptimizer` (``_tbe/fused_optimizer.py``): the keyed view of the in-backward optimizer
* fully sharded 2-D kernels ``ShardedBatchedFusedEmbedding(Bag)`` (``_tbe/fully_sharded.py``)
* key-value / zero-collision kernels and their optimizers (``_tbe/key_value.py``, ``_tbe/zero_collision.py``,
  ``_tbe/kv_optimizer.py``): need FBGEMM's CUDA package (its key-value stores); Triton (``_tbe/triton.py``)
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
from recsys_lib.distributed._tbe.key_value import KeyValueEmbedding, KeyValueEmbeddingBag  # noqa: F401
from recsys_lib.distributed._tbe.kv_optimizer import (  # noqa: F401
    KeyValueEmbeddingFusedOptimizer,
    ShardParams,
    ZeroCollisionKeyValueEmbeddingFusedOptimizer,
)
from recsys_lib.distributed._tbe.triton import TritonBatchedFusedEmbeddingBag, TritonEmbeddingFusedOptimizer  # noqa: F401
from recsys_lib.distributed._tbe.zero_collision import (  # noqa: F401
    ZeroCollisionEmbeddingCache,
    ZeroCollisionEmbeddingEnrichmentCache,
    ZeroCollisionKeyValueEmbedding,
    ZeroCollisionKeyValueEmbeddingBag,
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
    "KeyValueEmbedding",
    "KeyValueEmbeddingBag",
    "KeyValueEmbeddingFusedOptimizer",
    "ReduceScatterResizeAwaitable",
    "ShardedBatchedFusedEmbedding",
    "ShardedBatchedFusedEmbeddingBag",
    "ShardParams",
    "TableBatchedEmbeddingSlice",
    "TritonBatchedFusedEmbeddingBag",
    "TritonEmbeddingFusedOptimizer",
    "ZeroCollisionEmbeddingCache",
    "ZeroCollisionEmbeddingEnrichmentCache",
    "ZeroCollisionKeyValueEmbedding",
    "ZeroCollisionKeyValueEmbeddingBag",
    "ZeroCollisionKeyValueEmbeddingFusedOptimizer",
]
