"""RW sharding strategy: row blocks of ``ceil(R / W)`` per rank (``layout.py``), bucketized input
(``bucketize.py``), pooled (``pooled.py``) and sequence (``sequence.py``) shardings, imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.rw_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseRwEmbeddingSharding": "base",
    "RwPooledEmbeddingDist": "pooled",
    "RwPooledEmbeddingSharding": "pooled",
    "RwSparseFeaturesDist": "pooled",
    "RwSequenceEmbeddingDist": "sequence",
    "RwSequenceEmbeddingSharding": "sequence",
    "InferRwPooledEmbeddingSharding": "infer",
    "InferRwSequenceEmbeddingSharding": "infer",
    "InferRwSparseFeaturesDist": "infer_dist",
    "InferRwPooledEmbeddingDist": "infer_dist",
    "RwSparseFeaturesWriteDist": "write_dist",
    "convert_tensor": "shard_offsets",
    "get_embedding_shard_metadata": "shard_offsets",
})
