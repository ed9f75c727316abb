"""Embedding-tower sharding (TorchRec's ``torchrec.distributed.embedding_tower_sharding``): each tower on one
host, features sent there, outputs sent back. Defined in ``distributed/_tower/``."""

from recsys_lib.distributed._tower.collection import ShardedEmbeddingTowerCollection  # noqa: F401
from recsys_lib.distributed._tower.sharded import (  # noqa: F401
    EmbeddingTowerCollectionContext,
    ShardedEmbeddingTower,
    TowerLazyAwaitable,
)
from recsys_lib.distributed._tower.sharders import (  # noqa: F401
    EmbeddingTowerCollectionSharder,
    EmbeddingTowerSharder,
)
