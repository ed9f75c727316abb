"""``BaseCwEmbeddingSharding``: what every column-wise sharding shares (placement queries), for user subclasses.

Queries come from the strategy's pooled sharding (``sharding/_delegate.py``); the three factories stay abstract.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import C, F, T, W, EmbeddingSharding
from recsys_lib.distributed.sharding._delegate import DelegatedQueries, init_base_sharding
from recsys_lib.distributed.sharding.cw_sharding.pooled import CwPooledEmbeddingSharding
from recsys_lib.distributed.sharding.cw_sharding.sequence import CwSequenceEmbeddingSharding
from recsys_lib.distributed.sharding.tw_sharding.base import BaseTwEmbeddingSharding
from recsys_lib.distributed.sharding.twcw_sharding.pooled import TwCwPooledEmbeddingSharding


@public_at("recsys_lib.distributed.sharding.cw_sharding")
class BaseCwEmbeddingSharding(BaseTwEmbeddingSharding[C, F, T, W]):
    """Column-wise base: column shards placed like tables (a table-wise base).

    Args:
        sharding_infos: the tables (shards) planned ``column_wise``.
        env: world, rank and process group.
        device: where lookups and outputs live.
        permute_embeddings: put each feature's column shards back in column order on output.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        EmbeddingSharding.__init__(self, qcomm_codecs_registry=qcomm_codecs_registry)
        inner = CwPooledEmbeddingSharding(sharding_infos, env, device, permute_embeddings, qcomm_codecs_registry)
        init_base_sharding(self, inner, env, device)
        self._permute_embeddings = permute_embeddings

BaseCwEmbeddingSharding.register(CwPooledEmbeddingSharding)
BaseCwEmbeddingSharding.register(CwSequenceEmbeddingSharding)
BaseCwEmbeddingSharding.register(TwCwPooledEmbeddingSharding)
