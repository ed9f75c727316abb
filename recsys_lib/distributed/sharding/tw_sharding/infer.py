"""TW inference shardings of quantized tables on one host: each table whole on one rank, outputs side by side.

See ``distributed/_infer/sharding.py`` for what all inference shardings share; every "rank" is a device of this
process (no process group).
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._infer.sharding import InferEmbeddingShardingBase
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.tw_sharding.infer_dist import InferTwPooledEmbeddingDist


@public_at("recsys_lib.distributed.sharding.tw_sharding")
class InferTwEmbeddingSharding(InferEmbeddingShardingBase):
    """Pooled (EBC) table-wise inference sharding::

        rank 0: t0, t2      rank 1: t1       output: [t0 | t2 | t1] columns, put in module order by the caller
    """

    row_split = False
    pooled = True
    concat_dist = InferTwPooledEmbeddingDist

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
        storage_device_type_from_sharding_infos: Optional[str] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)


@public_at("recsys_lib.distributed.sharding.tw_sequence_sharding")
class InferTwSequenceEmbeddingSharding(InferEmbeddingShardingBase):
    """Sequence (EC) table-wise inference sharding: each feature's rows come from the rank holding its table."""

    row_split = False
    pooled = False

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
        storage_device_type_from_sharding_infos: Optional[str] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)
