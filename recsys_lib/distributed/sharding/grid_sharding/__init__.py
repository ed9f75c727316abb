"""GRID sharding strategy: column blocks per host (column-wise) split by rows inside the host (table-row-wise):
``layout.py`` (pure) and ``pooled.py`` (EBC; EmbeddingCollection has no grid sharding)."""

from recsys_lib.distributed.sharding.grid_sharding.pooled import GridPooledEmbeddingSharding  # noqa: F401
