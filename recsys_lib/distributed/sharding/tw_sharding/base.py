"""``BaseTwEmbeddingSharding``: what every table-wise sharding shares (placement queries), for user subclasses.

Queries come from the strategy's pooled sharding (``sharding/_delegate.py``); the three factories stay abstract.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import C, F, T, W, EmbeddingSharding
from recsys_lib.distributed.sharding._delegate import DelegatedQueries, init_base_sharding
from recsys_lib.distributed.sharding.tw_sharding.pooled import TwPooledEmbeddingSharding
from recsys_lib.distributed.sharding.tw_sharding.sequence import TwSequenceEmbeddingSharding


@public_at("recsys_lib.distributed.sharding.tw_sharding")
class BaseTwEmbeddingSharding(DelegatedQueries, EmbeddingSharding[C, F, T, W]):
    """Table-wise base: whole tables per rank.

    Args:
        sharding_infos: the tables planned ``table_wise``.
        env: world, rank and process group.
        device: where lookups and outputs live.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        storage_device_type_from_sharding_infos: storage device type of the tables (informational).
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        storage_device_type_from_sharding_infos: Optional[str] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        inner = TwPooledEmbeddingSharding(sharding_infos, env, device, qcomm_codecs_registry)
        init_base_sharding(self, inner, env, device)
        self._storage_device_type = storage_device_type_from_sharding_infos


BaseTwEmbeddingSharding.register(TwPooledEmbeddingSharding)
BaseTwEmbeddingSharding.register(TwSequenceEmbeddingSharding)
