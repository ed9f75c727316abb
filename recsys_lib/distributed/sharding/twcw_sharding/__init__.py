"""TWCW sharding strategy: layout math now; pooled / sequence / inference classes land with the sharded modules."""

from recsys_lib.distributed.sharding.twcw_sharding.pooled import TwCwPooledEmbeddingSharding  # noqa: F401,E402
