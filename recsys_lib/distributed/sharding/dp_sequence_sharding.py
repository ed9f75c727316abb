"""TorchRec path ``sharding.dp_sequence_sharding``; the code is in ``dp_sharding/sequence.py``."""

from recsys_lib.distributed.sharding.dp_sharding.sequence import (  # noqa: F401
    DpSequenceEmbeddingDist,
    DpSequenceEmbeddingSharding,
)
