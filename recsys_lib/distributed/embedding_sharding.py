"""Shared pieces of the sharding strategies (TorchRec's ``torchrec.distributed.embedding_sharding`` path).

For now: :func:`group_tables` (implemented in ``_grouping.py``), which decides which table shards on a rank
share one TBE kernel. The ``EmbeddingSharding`` base and bucketization helpers join this module with the
sharding strategies.
"""

from recsys_lib.distributed._grouping import group_tables  # noqa: F401

__all__ = ["group_tables"]
