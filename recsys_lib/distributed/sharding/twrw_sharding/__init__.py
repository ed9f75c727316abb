"""TWRW sharding strategy: each table row-wise over the ranks of one host (``layout.py``, pure) and the
pooled sharding composed of row-wise (inside a host) and table-wise (across hosts) parts (``pooled.py``)."""

from recsys_lib.distributed.sharding.rw_sharding.pooled import RwSparseFeaturesDist as TwRwSparseFeaturesDist  # noqa
from recsys_lib.distributed.sharding.twrw_sharding.pooled import (  # noqa: F401
    TwRwPooledEmbeddingDist,
    TwRwPooledEmbeddingSharding,
)
