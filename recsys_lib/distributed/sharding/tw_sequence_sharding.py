"""TorchRec path ``sharding.tw_sequence_sharding``; the code is in ``tw_sharding/sequence.py``."""

from recsys_lib.distributed.sharding.tw_sharding.sequence import (  # noqa: F401
    TwSequenceEmbeddingDist,
    TwSequenceEmbeddingSharding,
)
from recsys_lib.distributed.sharding.tw_sharding.infer import InferTwSequenceEmbeddingSharding  # noqa: F401
from recsys_lib.distributed.sharding.tw_sharding.infer_dist import InferTwSequenceEmbeddingDist  # noqa: F401
