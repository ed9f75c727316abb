"""RW inference shardings of quantized tables on one host: row blocks of a table on several ranks; each id goes to the rank owning its row.

See ``distributed/_infer/sharding.py`` for what all inference shardings share; every "rank" is a device of this
process (no process group).
"""

from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._infer.sharding import InferEmbeddingShardingBase
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo


@public_at("recsys_lib.distributed.sharding.rw_sharding")
class InferRwPooledEmbeddingSharding(InferEmbeddingShardingBase):
    """Pooled (EBC) row-wise inference sharding::

        t1 (R=12) on ranks [0, 1]:  rank 0 rows [0, 6)   rank 1 rows [6, 12)
        bag | 3 7 |  ->  rank 0 pools row 3, rank 1 pools local row 1; output = sum of the two (float32)

    Local kernels pool with SUM; MEAN bags are divided by their length after the sum (sum-then-divide).
    """

    row_split = True
    pooled = True

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)
        self._need_pos = need_pos


@public_at("recsys_lib.distributed.sharding.rw_sequence_sharding")
class InferRwSequenceEmbeddingSharding(InferEmbeddingShardingBase):
    """Sequence (EC) row-wise inference sharding: each id's row comes from the rank owning it and is put back at
    the id's position."""

    row_split = True
    pooled = False

    def __init__(
        self,
        sharding_infos: List[EmbeddingShardingInfo],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, Any]] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__(sharding_infos, env, device)
        self._need_pos = need_pos
