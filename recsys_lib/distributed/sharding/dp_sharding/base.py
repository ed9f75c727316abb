"""``BaseDpEmbeddingSharding``: what every data-parallel sharding shares (placement queries), for user subclasses.

Queries come from the strategy's pooled sharding (``sharding/_delegate.py``); the three factories stay abstract.
"""

from typing import Any, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import C, F, T, W, EmbeddingSharding
from recsys_lib.distributed.sharding._delegate import DelegatedQueries, init_base_sharding
from recsys_lib.distributed.sharding.dp_sharding.pooled import DpPooledEmbeddingSharding
from recsys_lib.distributed.sharding.dp_sharding.sequence import DpSequenceEmbeddingSharding


@public_at("recsys_lib.distributed.sharding.dp_sharding")
class BaseDpEmbeddingSharding(DelegatedQueries, EmbeddingSharding[C, F, T, W]):
    """Data-parallel base: every table replicated on every rank.

    Args:
        sharding_infos: the tables (shards) planned ``data_parallel``.
        env: world, rank and process group.
        device: where lookups and outputs live.
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
    ) -> None:
        EmbeddingSharding.__init__(self, qcomm_codecs_registry=None)
        inner = DpPooledEmbeddingSharding(sharding_infos, env, device)
        init_base_sharding(self, inner, env, device)


BaseDpEmbeddingSharding.register(DpPooledEmbeddingSharding)
BaseDpEmbeddingSharding.register(DpSequenceEmbeddingSharding)
