"""Table-wise pooled sharding (EBC): whole tables on single ranks.

Rank → rows (t0 → rank 0, t1 → rank 1, t2 → rank 0; W=2, each rank's batch B)::

    rank 0: t0 rows [0, R0), t2 rows [0, R2)      looks up f(t0), f(t2) for all W*B samples
    rank 1: t1 rows [0, R1)                       looks up f(t1) for all W*B samples

Per batch: one ``KJTAllToAll`` (split sizes, then tensors) sends each feature to its table's rank; the
lookup pools ``[W*B, D_rank]``; one ``PooledEmbeddingsAllToAll`` sends rows ``[r*B, (r+1)*B)`` back to rank r,
which receives ``[B, D_0 | D_1 | ...]`` (rank-major columns, see ``RankPlacement``).
"""

from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed._core.enums import CommOp, ShardingType
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.distributed._dist.pooled import (
    PooledEmbeddingsAllToAll,
    PooledEmbeddingsAwaitable,
    VariableBatchPooledEmbeddingsAllToAll,
)
from recsys_lib.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import (
    BaseEmbeddingDist,
    BaseSparseFeaturesDist,
    EmbeddingSharding,
    EmbeddingShardingContext,
)
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding._placement import PlacementQueries, RankPlacement
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _pg(env: ShardingEnv) -> dist.ProcessGroup:
    if env.process_group is None:
        raise ValueError(
            "table-wise / column-wise sharding needs a process group (ShardingEnv.from_process_group(pg)); "
            "ShardingEnv.from_local is for inference sharders"
        )
    return env.process_group


def _codecs(registry: Optional[Dict[str, QuantizedCommCodecs]], op: CommOp) -> Optional[QuantizedCommCodecs]:
    return None if registry is None else registry.get(op.value, None)


class TwSparseFeaturesDist(BaseSparseFeaturesDist[KeyedJaggedTensor]):
    """Sends ``features_per_rank[r]`` consecutive features (the sharding's order) to rank r (``KJTAllToAll``)."""

    def __init__(self, pg: dist.ProcessGroup, features_per_rank: List[int]) -> None:
        super().__init__()
        self._dist = KJTAllToAll(pg=pg, splits=features_per_rank)

    def forward(self, sparse_features: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        return self._dist(sparse_features)


class TwPooledEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """``[ΣB_r, D_me]`` on every rank → ``[B_me, Σ_k D_k]`` (``PooledEmbeddingsAllToAll``); callbacks run on wait."""

    def __init__(
        self,
        pg: dist.ProcessGroup,
        dim_sum_per_rank: List[int],
        emb_dim_per_rank_per_feature: List[List[int]],
        device: Optional[torch.device] = None,
        callbacks: Optional[List[Callable[[torch.Tensor], torch.Tensor]]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__()
        codecs = _codecs(qcomm_codecs_registry, CommOp.POOLED_EMBEDDINGS_ALL_TO_ALL)
        self._dist = PooledEmbeddingsAllToAll(
            pg=pg, dim_sum_per_rank=dim_sum_per_rank, device=device, callbacks=callbacks, codecs=codecs,
        )
        self._emb_dim_per_rank_per_feature = emb_dim_per_rank_per_feature
        self._world = dist.get_world_size(pg)
        self._vbe_dist = VariableBatchPooledEmbeddingsAllToAll(pg, emb_dim_per_rank_per_feature, device, callbacks,
                                                               codecs)

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> PooledEmbeddingsAwaitable:
        if sharding_ctx is not None and sharding_ctx.variable_batch_per_feature:
            return self.forward_variable_batch(local_embs, sharding_ctx)
        if self._world == 1:
            # One rank: its lookup output already is [B, sum D] in order; skip the all-to-all's copies (forward and
            # backward) and the gradient scaling by 1.
            out = PooledEmbeddingsAwaitable(NoWait(local_embs))
            out.callbacks.extend(self._dist.callbacks)
            return out
        batch_size_per_rank = None
        if sharding_ctx is not None and len(sharding_ctx.batch_size_per_rank) > 0:
            batch_size_per_rank = sharding_ctx.batch_size_per_rank
        return self._dist(local_embs, batch_size_per_rank=batch_size_per_rank)

    def forward_variable_batch(
        self, local_embs: torch.Tensor, sharding_ctx: EmbeddingShardingContext
    ) -> PooledEmbeddingsAwaitable:
        """VBE: flat ``[r][f][B[r][f]][D_f]`` → this rank's flat ``[f][b_f][D_f]`` in sharding feature order."""
        per_rank = sharding_ctx.batch_size_per_rank_per_feature or [[] for _ in range(self._world)]
        return self._vbe_dist(local_embs, per_rank, sharding_ctx.batch_size_per_feature_pre_a2a)


class TwPooledEmbeddingSharding(
    PlacementQueries,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Table-wise pooled sharding (see the module docstring). Every shard in the plan acts as a table, so
    column-wise sharding runs this class on its column shards.

    Args:
        sharding_infos: the tables of one module planned ``table_wise`` (or shards, for CW/TWCW).
        env: world, rank and process group.
        device: where lookups and outputs live.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        storage_device_type_from_sharding_infos: the tables' storage device type as the sharder read it from the
            plan (kept for TorchRec's signature; lookups and outputs follow ``device``).
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
        self._storage_device_type_from_sharding_infos = storage_device_type_from_sharding_infos
        self._env = env
        self._pg = _pg(env)
        self._device = device
        self._placement = RankPlacement(sharding_infos, env.world_size, env.rank)

    def create_input_dist(self, device: Optional[torch.device] = None) -> TwSparseFeaturesDist:
        return TwSparseFeaturesDist(self._pg, self.features_per_rank())

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> GroupedPooledEmbeddingsLookup:
        return GroupedPooledEmbeddingsLookup(
            grouped_configs=self._placement.local_grouped_configs,
            device=device if device is not None else self._device,
            pg=self._pg,
            feature_processor=feature_processor,
            sharding_type=ShardingType.TABLE_WISE,
        )

    def create_output_dist(self, device: Optional[torch.device] = None) -> TwPooledEmbeddingDist:
        return TwPooledEmbeddingDist(
            self._pg, self.dim_sum_per_rank(), self._placement.embedding_dims_per_rank(),
            device if device is not None else self._device, None, self.qcomm_codecs_registry,
        )
