"""GRID sharding strategy: column blocks per host (column-wise) split by rows inside the host (table-row-wise):
``layout.py`` (pure) and ``pooled.py`` (EBC; EmbeddingCollection has no grid sharding), imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.grid_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "BaseGridEmbeddingSharding": "base",
    "GridPooledEmbeddingDist": "dist",
    "GridPooledEmbeddingSharding": "pooled",
})
