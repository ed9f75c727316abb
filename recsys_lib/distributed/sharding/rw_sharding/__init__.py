"""RW sharding strategy: row blocks of ``ceil(R / W)`` per rank (``layout.py``), bucketized input
(``bucketize.py``), pooled (``pooled.py``) and sequence (``sequence.py``) shardings."""

from recsys_lib.distributed.sharding.rw_sharding.pooled import (  # noqa: F401
    RwPooledEmbeddingDist,
    RwPooledEmbeddingSharding,
    RwSparseFeaturesDist,
)
from recsys_lib.distributed.sharding.rw_sharding.sequence import (  # noqa: F401
    RwSequenceEmbeddingDist,
    RwSequenceEmbeddingSharding,
)
