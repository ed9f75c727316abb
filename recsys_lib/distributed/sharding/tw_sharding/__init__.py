"""TW sharding strategy: whole tables on one rank each (``layout.py``, pure); pooled (``pooled.py``) and sequence
(``sequence.py``) shardings, imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.tw_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseTwEmbeddingSharding": "base",
    "TwPooledEmbeddingDist": "pooled",
    "TwPooledEmbeddingSharding": "pooled",
    "TwSparseFeaturesDist": "pooled",
    "TwSequenceEmbeddingDist": "sequence",
    "TwSequenceEmbeddingSharding": "sequence",
    "InferTwEmbeddingSharding": "infer",
    "InferTwSequenceEmbeddingSharding": "infer",
    "InferTwSparseFeaturesDist": "infer_dist",
    "InferTwPooledEmbeddingDist": "infer_dist",
})
