"""Grid pooled sharding (EBC): column blocks (one per host), each split by rows over that host's ranks.

Rank → rows/columns (table 10 x 8, ``grid_shard(host_indexes=[0, 1])``, W=4, L=2)::

    rank 0 (host 0): rows [0, 5),  cols [0, 4)      rank 2 (host 1): rows [0, 5),  cols [4, 8)
    rank 1 (host 0): rows [5, 10), cols [0, 4)      rank 3 (host 1): rows [5, 10), cols [4, 8)

Composition, no new collectives: every column block is a table-row-wise unit (``TwRwPooledEmbeddingSharding``
built by ``of_column_blocks``: bucketized input, intra-host reduce-scatter, cross-host all-to-all), and
column-wise's :func:`combine_permute` puts each feature's column blocks back side by side on wait (after the
MEAN division, which is per block and so unaffected by the order).
"""

from typing import Any, Dict, List, Optional

import torch
from torch import nn

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed.sharding._delegate import DelegatedSharding
from recsys_lib.distributed.sharding.cw_sharding.pooled import ColumnCombiningDist, combine_permute
from recsys_lib.distributed.sharding.twrw_sharding.pooled import TwRwPooledEmbeddingSharding
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class GridPooledEmbeddingSharding(
    DelegatedSharding,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Grid pooled sharding (see the module docstring).

    Args:
        sharding_infos: tables planned ``grid_shard`` (column blocks, each on all ranks of one host in row order).
        env / device / need_pos / qcomm_codecs_registry: as ``RwPooledEmbeddingSharding``.

    Outputs always come in column order (each feature's blocks side by side), as TorchRec's.
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._inner = TwRwPooledEmbeddingSharding.of_column_blocks(sharding_infos, env, device, need_pos,
                                                                   qcomm_codecs_registry)
        self._names, self._dims, _ = combine_permute(self._inner.segments())

    @property
    def need_pos(self) -> bool:
        return self._inner.need_pos

    def embedding_names(self) -> List[str]:
        return list(self._names)

    def embedding_dims(self) -> List[int]:
        return list(self._dims)

    def create_output_dist(self, device: Optional[torch.device] = None) -> nn.Module:
        return ColumnCombiningDist(self._inner.create_output_dist(device), self._inner.segments())
