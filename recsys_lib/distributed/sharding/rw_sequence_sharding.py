"""TorchRec import path ``torchrec.distributed.sharding.rw_sequence_sharding``: the row-wise sequence (EC)
sharding lives in ``rw_sharding/sequence.py``."""

from recsys_lib.distributed.sharding.rw_sharding.sequence import (  # noqa: F401
    RwSequenceEmbeddingDist,
    RwSequenceEmbeddingSharding,
)
from recsys_lib.distributed.sharding.rw_sharding.pooled import RwSparseFeaturesDist  # noqa: F401
from recsys_lib.distributed.sharding.rw_sharding.infer import InferRwSequenceEmbeddingSharding  # noqa: F401
from recsys_lib.distributed.sharding.rw_sharding.infer_dist import InferRwSequenceEmbeddingDist  # noqa: F401
