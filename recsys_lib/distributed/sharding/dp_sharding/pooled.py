"""Data-parallel pooled sharding (EBC): every rank holds every table; nothing is sent.

Rank → rows (W ranks)::

    rank r: every table, rows [0, R)     looks up its own batch only

Input and output dists are no-ops (``NoWait``). The tables are ordinary autograd parameters (``dense``
kernel, one kernel per table so parameter names match the unsharded module); with a process group of more
than one rank the lookup is wrapped in ``DistributedDataParallel``, which averages their gradients.
"""

import warnings
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from recsys_lib.distributed._tbe.grouping import USE_ONE_TBE_PER_TABLE
from recsys_lib.distributed._sharded.shard_tables import replicated_tables
from recsys_lib.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import (
    BaseEmbeddingDist,
    BaseSparseFeaturesDist,
    EmbeddingSharding,
    EmbeddingShardingContext,
)
from recsys_lib.distributed._tbe.grouping import group_tables
from recsys_lib.distributed._sharded.table_types import (
    BaseGroupedFeatureProcessor,
    GroupedEmbeddingConfig,
    ShardedEmbeddingTable,
)
from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class DpSparseFeaturesDist(BaseSparseFeaturesDist[KeyedJaggedTensor]):
    """No input dist: each rank looks up its own batch."""

    def __init__(self) -> None:
        super().__init__()

    def forward(self, sparse_features: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        return NoWait(NoWait(sparse_features))


class DpPooledEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """No output dist: the local pooled embeddings are already this rank's."""

    def __init__(self) -> None:
        super().__init__()

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        return NoWait(local_embs)


def replicated_grouped_configs(sharding_infos: List[Any]) -> List[GroupedEmbeddingConfig]:
    """One kernel per table (parameter names stay ``<table>.weight``), tables in plan order (pure)."""
    tables = replicated_tables(sharding_infos)
    for t in tables:
        t.fused_params = dict(t.fused_params or {})
        t.fused_params[USE_ONE_TBE_PER_TABLE] = True
    return group_tables([tables])[0]


def wrap_replicated(lookup: nn.Module, env: ShardingEnv) -> nn.Module:
    """``DistributedDataParallel(lookup)`` when gradients must be averaged over several ranks."""
    if env.process_group is None or env.world_size == 1:
        return lookup
    if not any(p.requires_grad for p in lookup.parameters()):
        return lookup
    with warnings.catch_warnings():
        # The kernels' buffers are index bookkeeping, equal on every rank: no per-step buffer broadcast.
        warnings.simplefilter("ignore", FutureWarning)
        return nn.parallel.DistributedDataParallel(
            lookup, process_group=env.process_group, gradient_as_bucket_view=True, broadcast_buffers=False,
        )


class ReplicatedShardingMixin:
    """What DP pooled and DP sequence sharding share: every rank holds every table (flat mix-in)."""

    _env: ShardingEnv
    _grouped_configs: List[GroupedEmbeddingConfig]

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
    ) -> None:
        # Replicated tables send nothing, so there are no wire codecs (TorchRec's constructor takes none).
        super().__init__()  # type: ignore[call-arg]  (next: EmbeddingSharding)
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


class DpPooledEmbeddingSharding(
    ReplicatedShardingMixin,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Data-parallel pooled sharding (see the module docstring)."""

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> nn.Module:
        lookup = GroupedPooledEmbeddingsLookup(
            grouped_configs=self._grouped_configs,
            device=device if device is not None else self._device,
            pg=self._env.process_group,
            feature_processor=feature_processor,
            sharding_type=ShardingType.DATA_PARALLEL,
        )
        return wrap_replicated(lookup, self._env)

    def create_output_dist(self, device: Optional[torch.device] = None) -> DpPooledEmbeddingDist:
        return DpPooledEmbeddingDist()
