"""TWCW sharding strategy: column blocks on the ranks of one host (``layout.py``, pure); pooled sharding
(``pooled.py``), imported on first access.

The registry (``sharding/strategy.py``) imports only ``layout.py`` from here; the sharding classes load when first
named (``from recsys_lib.distributed.sharding.twcw_sharding import ...``).
"""

from recsys_lib.distributed.sharding._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "TwCwPooledEmbeddingSharding": "pooled",
})
