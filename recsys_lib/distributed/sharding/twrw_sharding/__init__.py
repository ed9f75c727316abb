"""TWRW sharding strategy: each table row-wise over the ranks of one host (``layout.py``, pure) and the
pooled sharding composed of row-wise (inside a host) and table-wise (across hosts) parts (``pooled.py``), imported
on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.twrw_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseTwRwEmbeddingSharding": "base",
    "TwRwPooledEmbeddingDist": "pooled",
    "TwRwPooledEmbeddingSharding": "pooled",
    "TwRwSparseFeaturesDist": "input_dist",
})
