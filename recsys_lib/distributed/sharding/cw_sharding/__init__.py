"""CW sharding strategy: column blocks (``layout.py``, pure), each block sharded table-wise: pooled (``pooled.py``)
and sequence (``sequence.py``) shardings, imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.cw_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseCwEmbeddingSharding": "base",
    "CwPooledEmbeddingSharding": "pooled",
    "CwSequenceEmbeddingDist": "sequence",
    "CwSequenceEmbeddingSharding": "sequence",
    "InferCwPooledEmbeddingSharding": "infer",
    "InferCwSequenceEmbeddingSharding": "infer",
    "InferCwPooledEmbeddingDist": "infer_dist",
    "InferCwPooledEmbeddingDistWithPermute": "infer_dist",
})
