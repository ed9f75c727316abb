"""Data-parallel sequence sharding (EC): every rank holds every table; nothing is sent.

Rank → rows: rank r holds every table, rows [0, R), and looks up its own batch. The lookup returns
``[ids, D]`` in the order of the (sharding-ordered) local KJT; both dists are no-ops.
"""

from typing import Any, Dict, List, Optional

import torch
from torch import nn

from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed.embedding_types import BaseGroupedFeatureProcessor, ShardedEmbeddingTable
from recsys_lib.distributed.sharding.dp_sharding.pooled import (
    DpSparseFeaturesDist,
    replicated_grouped_configs,
    wrap_replicated,
)
from recsys_lib.distributed.types import Awaitable, NoWait, QuantizedCommCodecs, ShardingEnv
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class DpSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """No output dist: the local rows are already this rank's."""

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        return NoWait(local_embs)


class DpSequenceEmbeddingSharding(
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor]
):
    """Data-parallel sequence sharding (see the module docstring)."""

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._env = env
        self._device = device
        self._grouped_configs = replicated_grouped_configs(sharding_infos)

    def feature_names(self) -> List[str]:
        return [f for g in self._grouped_configs for f in g.feature_names()]

    def feature_names_per_rank(self) -> List[List[str]]:
        return [self.feature_names() for _ in range(self._env.world_size)]

    def features_per_rank(self) -> List[int]:
        return [len(self.feature_names()) for _ in range(self._env.world_size)]

    def embedding_dims(self) -> List[int]:
        return [d for g in self._grouped_configs for d in g.embedding_dims()]

    def embedding_names(self) -> List[str]:
        return [n for g in self._grouped_configs for n in g.embedding_names()]

    def embedding_names_per_rank(self) -> List[List[str]]:
        return [self.embedding_names() for _ in range(self._env.world_size)]

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        return [m for g in self._grouped_configs for m in g.embedding_shard_metadata()]

    def embedding_tables(self) -> List[ShardedEmbeddingTable]:
        return [t for g in self._grouped_configs for t in g.embedding_tables]

    def create_input_dist(self, device: Optional[torch.device] = None) -> DpSparseFeaturesDist:
        return DpSparseFeaturesDist()

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
