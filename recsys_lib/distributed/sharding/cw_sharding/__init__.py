"""CW sharding strategy: layout math now; pooled / sequence / inference classes land with the sharded modules."""

from recsys_lib.distributed.sharding.cw_sharding.pooled import CwPooledEmbeddingSharding  # noqa: F401,E402
from recsys_lib.distributed.sharding.cw_sharding.sequence import (  # noqa: F401,E402
    CwSequenceEmbeddingDist,
    CwSequenceEmbeddingSharding,
)
