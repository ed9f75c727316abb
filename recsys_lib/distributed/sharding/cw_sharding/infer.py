"""CW inference shardings of quantized tables on one host: column blocks of a table on several ranks, each looked up with the table's ids; the blocks side by side.

See ``distributed/_infer/sharding.py`` for what all inference shardings share; every "rank" is a device of this
process (no process group).
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._infer.sharding import InferEmbeddingShardingBase
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.cw_sharding.infer_dist import InferCwPooledEmbeddingDist


@public_at("recsys_lib.distributed.sharding.cw_sharding")
class InferCwPooledEmbeddingSharding(InferEmbeddingShardingBase):
    """Pooled (EBC) column-wise inference sharding::

        t0 (D=16) on ranks [0, 1]:  rank 0 cols [0, 8)   rank 1 cols [8, 16)   every id goes to both

    Each block keeps its rows' scale and bias, so the blocks dequantise exactly as the whole table.
    """

    row_split = False
    pooled = True
    concat_dist = InferCwPooledEmbeddingDist

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)
        self._permute_embeddings = permute_embeddings


@public_at("recsys_lib.distributed.sharding.cw_sequence_sharding")
class InferCwSequenceEmbeddingSharding(InferEmbeddingShardingBase):
    """Sequence (EC) column-wise inference sharding: each id's row is its blocks side by side."""

    row_split = False
    pooled = False

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)
        self._permute_embeddings = permute_embeddings
