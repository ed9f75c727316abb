"""Data-parallel sequence sharding (EC): every rank holds every table; nothing is sent.

Rank → rows: rank r holds every table, rows [0, R), and looks up its own batch. The lookup returns
``[ids, D]`` in the order of the (sharding-ordered) local KJT; both dists are no-ops.
"""

from typing import Any, Dict, Optional

import torch
from torch import nn

from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding.dp_sharding.pooled import ReplicatedShardingMixin, wrap_replicated
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class DpSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """No output dist: the local rows are already this rank's."""

    def __init__(self) -> None:
        super().__init__()

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        return NoWait(local_embs)


class DpSequenceEmbeddingSharding(
    ReplicatedShardingMixin,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor]
):
    """Data-parallel sequence sharding (see the module docstring)."""

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> nn.Module:
        lookup = GroupedEmbeddingsLookup(
            grouped_configs=self._grouped_configs, pg=self._env.process_group,
            device=device if device is not None else self._device,
        )
        return wrap_replicated(lookup, self._env)

    def create_output_dist(self, device: Optional[torch.device] = None) -> DpSequenceEmbeddingDist:
        return DpSequenceEmbeddingDist()
