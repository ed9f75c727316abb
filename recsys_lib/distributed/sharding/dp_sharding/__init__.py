"""DP sharding strategy: layout math now; pooled / sequence / inference classes land with the sharded modules."""

from recsys_lib.distributed.sharding.dp_sharding.pooled import (  # noqa: F401,E402
    DpPooledEmbeddingDist,
    DpPooledEmbeddingSharding,
    DpSparseFeaturesDist,
)
from recsys_lib.distributed.sharding.dp_sharding.sequence import (  # noqa: F401,E402
    DpSequenceEmbeddingDist,
    DpSequenceEmbeddingSharding,
)
