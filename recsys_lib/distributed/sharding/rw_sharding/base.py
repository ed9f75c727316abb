"""``BaseRwEmbeddingSharding``: what every row-wise sharding shares (placement queries), for user subclasses.

Queries come from the strategy's pooled sharding (``sharding/_delegate.py``); the three factories stay abstract.
"""

from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import C, F, T, W, EmbeddingSharding
from recsys_lib.distributed.sharding._delegate import DelegatedQueries, init_base_sharding
from recsys_lib.distributed.sharding.rw_sharding.pooled import RwPooledEmbeddingSharding
from recsys_lib.distributed.sharding.rw_sharding.sequence import RwSequenceEmbeddingSharding


@public_at("recsys_lib.distributed.sharding.rw_sharding")
class BaseRwEmbeddingSharding(DelegatedQueries, EmbeddingSharding[C, F, T, W]):
    """Row-wise base: every table split into row blocks over all ranks.

    Args:
        sharding_infos: the tables (shards) planned ``row_wise``.
        env: world, rank and process group.
        device: where lookups and outputs live.
        need_pos: also send each id's position in its row block (position-weighted features).
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        device_type_from_sharding_infos: device type(s) of the tables' shards (informational).
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        EmbeddingSharding.__init__(self, qcomm_codecs_registry=qcomm_codecs_registry)
        inner = RwPooledEmbeddingSharding(sharding_infos, env, device, need_pos, qcomm_codecs_registry)
        init_base_sharding(self, inner, env, device)
        self._need_pos = need_pos
        self._device_type_from_sharding_infos = device_type_from_sharding_infos

BaseRwEmbeddingSharding.register(RwPooledEmbeddingSharding)
BaseRwEmbeddingSharding.register(RwSequenceEmbeddingSharding)
