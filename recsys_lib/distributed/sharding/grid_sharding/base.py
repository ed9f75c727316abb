"""``BaseGridEmbeddingSharding``: what every grid sharding shares (placement queries), for user subclasses.

Queries come from the strategy's pooled sharding (``sharding/_delegate.py``); the three factories stay abstract.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import C, F, T, W, EmbeddingSharding
from recsys_lib.distributed.sharding._delegate import DelegatedQueries, init_base_sharding
from recsys_lib.distributed.sharding.grid_sharding.pooled import GridPooledEmbeddingSharding


@public_at("recsys_lib.distributed.sharding.grid_sharding")
class BaseGridEmbeddingSharding(DelegatedQueries, EmbeddingSharding[C, F, T, W]):
    """Grid base: column blocks per host, each split by rows over the host's ranks.

    Args:
        sharding_infos: the tables (shards) planned ``grid_shard``.
        env: world, rank and process group.
        device: where lookups and outputs live.
        need_pos: also send each id's position in its row block (position-weighted features).
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        EmbeddingSharding.__init__(self, qcomm_codecs_registry=qcomm_codecs_registry)
        inner = GridPooledEmbeddingSharding(sharding_infos, env, device, need_pos, qcomm_codecs_registry)
        init_base_sharding(self, inner, env, device)
        self._need_pos = need_pos

BaseGridEmbeddingSharding.register(GridPooledEmbeddingSharding)
