"""TW sharding strategy: layout math now; pooled / sequence / inference classes land with the sharded modules."""

from recsys_lib.distributed.sharding.tw_sharding.pooled import (  # noqa: F401,E402
    TwPooledEmbeddingDist,
    TwPooledEmbeddingSharding,
    TwSparseFeaturesDist,
)
from recsys_lib.distributed.sharding.tw_sharding.sequence import (  # noqa: F401,E402
    TwSequenceEmbeddingDist,
    TwSequenceEmbeddingSharding,
)
