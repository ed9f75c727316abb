"""TorchRec path ``sharding.cw_sequence_sharding``; the code is in ``cw_sharding/sequence.py``."""

from recsys_lib.distributed.sharding.cw_sharding.sequence import (  # noqa: F401
    CwSequenceEmbeddingDist,
    CwSequenceEmbeddingSharding,
)
from recsys_lib.distributed.sharding.cw_sharding.infer import InferCwSequenceEmbeddingSharding  # noqa: F401
from recsys_lib.distributed.sharding.cw_sharding.infer_dist import InferCwSequenceEmbeddingDist  # noqa: F401
