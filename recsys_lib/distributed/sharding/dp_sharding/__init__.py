"""DP sharding strategy: every rank holds whole tables (``layout.py``, pure); pooled (``pooled.py``) and sequence
(``sequence.py``) shardings, imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.dp_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseDpEmbeddingSharding": "base",
    "DpPooledEmbeddingDist": "pooled",
    "DpPooledEmbeddingSharding": "pooled",
    "DpSparseFeaturesDist": "pooled",
    "DpSequenceEmbeddingDist": "sequence",
    "DpSequenceEmbeddingSharding": "sequence",
})
