"""Row-wise pooled sharding (EBC): every table split in row blocks of ``ceil(R / W)``, block r on rank r.

Rank → rows (t0: R=10, t1: R=5; W=4)::

    rank 0: t0 [0, 3)   t1 [0, 2)        rank 2: t0 [6, 9)   t1 [4, 5)
    rank 1: t0 [3, 6)   t1 [2, 4)        rank 3: t0 [9, 10)  t1 [5, 5)  (zero rows)

Per batch (``F`` features, this rank's batch ``B``):

1. input dist: ids checked against their table's rows, bucketized by row block (``bucketize.py``),
   one ``KJTAllToAll`` with ``splits = [F] * W``: rank r receives bucket r of every rank's batch;
2. lookup: partial pooled sums ``[ΣB_k, ΣD]`` over the local rows (MEAN tables are looked up as SUM);
3. output dist: one reduce-scatter sums the partials and hands rank r its rows ``[B, ΣD]``; MEAN columns
   are then divided by the *global* bag length (this rank's original lengths), so a bag split over
   several shards averages over all its ids (TorchRec divides per shard, torchrec#2362).
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
    PooledEmbeddingsAwaitable,
    PooledEmbeddingsReduceScatter,
    VariableBatchPooledEmbeddingsReduceScatter,
)
from recsys_lib.distributed._dist.vbe_layout import divide_rows
from recsys_lib.distributed._sharded.routing import check_ids
from recsys_lib.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import (
    BaseEmbeddingDist,
    BaseSparseFeaturesDist,
    EmbeddingSharding,
    EmbeddingShardingContext,
    InputDistFacts,
    SplitsWithFacts,
)
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding.rw_sharding._local_order import prepare_lookup
from recsys_lib.distributed.sharding.rw_sharding.bucketize import RowBuckets, bucketize_features, mean_divisor
from recsys_lib.distributed.sharding.rw_sharding.placement import RowPlacementQueries, row_wise_placement
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def require_pg(env: ShardingEnv, what: str) -> dist.ProcessGroup:
    if env.process_group is None:
        raise ValueError(f"{what} sharding needs a process group (ShardingEnv.from_process_group(pg))")
    return env.process_group


def codecs_for(registry: Optional[Dict[str, QuantizedCommCodecs]], op: CommOp) -> Optional[QuantizedCommCodecs]:
    return None if registry is None else registry.get(op.value, None)


def column_features(dims: List[int]) -> torch.Tensor:
    """Feature index of every output column (features laid side by side with widths ``dims``)."""
    return torch.repeat_interleave(torch.arange(len(dims)), torch.tensor(dims, dtype=torch.int64))


def divide_by_bag_lengths(pooled: torch.Tensor, divisor: Optional[torch.Tensor], col_feature: torch.Tensor) -> torch.Tensor:
    """``pooled[b, c] / divisor[b, feature(c)]`` (identity without a divisor)."""
    if divisor is None:
        return pooled
    return pooled / divisor.index_select(1, col_feature.to(divisor.device)).to(pooled.dtype)


class LocalTensors(Awaitable[KeyedJaggedTensor]):
    """The input dist's result in a world of one rank: the bucketized KJT itself (and its batch size)."""

    def __init__(self, kjt: KeyedJaggedTensor) -> None:
        super().__init__()
        self._kjt = kjt
        self._stride_per_rank: Optional[List[int]] = None if kjt.variable_stride_per_key() else [kjt.stride()]

    def _wait_impl(self) -> KeyedJaggedTensor:
        return self._kjt


class RwSparseFeaturesDist(BaseSparseFeaturesDist[KeyedJaggedTensor]):
    """Checks ids, bucketizes by row block and all-to-alls the buckets (see the module docstring).

    Args:
        pg: process group of the all-to-all.
        buckets: row buckets of the features (in the sharding's feature order).
        mean_features: per feature, whether its table pools by MEAN (the divisor is computed for those).
        is_sequence: also compute the unbucketize permutation.
        bucketize_pos: send each id's position in its original bag as its weight.
        key_permute / splits / stagger: two-level strategies reorder the bucketized keys rank-major and send
            ``splits[r]`` of them to rank r (default: bucket r → rank r, ``[F] * W``).
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        buckets: RowBuckets,
        mean_features: Optional[List[bool]] = None,
        is_sequence: bool = False,
        bucketize_pos: bool = False,
        key_permute: Optional[List[int]] = None,
        splits: Optional[List[int]] = None,
        stagger: int = 1,
    ) -> None:
        super().__init__()
        self._buckets = buckets
        self._mean_features = list(mean_features or [False] * len(buckets.feature_names))
        self._is_sequence = is_sequence
        self._bucketize_pos = bucketize_pos
        self._key_permute = key_permute
        self._key_permute_t = None if key_permute is None else torch.tensor(key_permute, dtype=torch.int64)
        num_features = len(buckets.feature_names)
        self._world = dist.get_world_size(pg)
        self._dist = KJTAllToAll(pg, splits if splits is not None else [num_features] * buckets.num_buckets, stagger)
        self.unbucketize_permute_tensor: Optional[torch.Tensor] = None  # last batch's (TorchRec attribute)
        self._check_ids = True  # off inside sharded modules, which check every input id before any input dist

    def forward(self, sparse_features: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        if self._check_ids:
            check_ids(sparse_features, self._buckets.rows, "row-wise input dist")
        divisor = mean_divisor(sparse_features, self._mean_features)
        bucketized, permute = bucketize_features(
            sparse_features, self._buckets, bucketize_pos=self._bucketize_pos, sequence=self._is_sequence
        )
        if self._key_permute is not None:
            bucketized = bucketized.permute(self._key_permute, self._key_permute_t)
        self.unbucketize_permute_tensor = permute
        sent = bucketized.length_per_key() if self._is_sequence else None
        batch = InputDistFacts(divisor, permute, sent)
        if self._world == 1:  # nothing to exchange: skip the all-to-all's copies
            return SplitsWithFacts(NoWait(LocalTensors(bucketized)), batch)
        return SplitsWithFacts(self._dist(bucketized), batch)


class RwPooledEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """Reduce-scatter of partial sums by batch rows, then the MEAN division (see the module docstring).

    Args:
        pg: process group of the reduce-scatter.
        embedding_dims: output width of each feature (for the MEAN divisor's columns).
        qcomm_codecs_registry: wire codecs (``CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER``).
        divide: apply the MEAN division here (two-level strategies divide after their last collective).
        callbacks: run on the result after the division (e.g. a column permutation).
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        embedding_dims: List[int],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        divide: bool = True,
        callbacks: Optional[List[Callable[[torch.Tensor], torch.Tensor]]] = None,
    ) -> None:
        super().__init__()
        codecs = codecs_for(qcomm_codecs_registry, CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER)
        self._dist = PooledEmbeddingsReduceScatter(pg, codecs=codecs)
        self._vbe_dist = VariableBatchPooledEmbeddingsReduceScatter(pg, codecs=codecs)
        self._world = dist.get_world_size(pg)
        self._embedding_dims = list(embedding_dims)
        self._col_feature = column_features(embedding_dims)
        self._divide = divide
        self._callbacks = list(callbacks or [])

    def reduce_scatter(self, local_embs: torch.Tensor, input_splits: Optional[List[int]]) -> Awaitable[torch.Tensor]:
        if self._world == 1:  # the sum over one rank is the input itself (no copy, no gradient scaling by 1)
            return PooledEmbeddingsAwaitable(NoWait(local_embs))
        return self._dist(local_embs, input_splits=input_splits)

    def reduce_scatter_variable_batch(
        self, local_embs: torch.Tensor, batch_size_per_rank_per_feature: List[List[int]], dims: List[int]
    ) -> Awaitable[torch.Tensor]:
        """VBE: flat ``[r][f][B[r][f]][D_f]`` partial sums → this rank's flat ``[f][b_f][D_f]``, summed."""
        if self._world == 1:
            return PooledEmbeddingsAwaitable(NoWait(local_embs.reshape(-1)))
        return self._vbe_dist(local_embs, batch_size_per_rank_per_feature, dims)

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is not None and sharding_ctx.variable_batch_per_feature:
            return self._forward_variable_batch(local_embs, sharding_ctx)
        splits = None
        if sharding_ctx is not None and len(sharding_ctx.batch_size_per_rank) > 0:
            splits = sharding_ctx.batch_size_per_rank
        out = self.reduce_scatter(local_embs, splits)
        batch = None if sharding_ctx is None else sharding_ctx.input_dist_facts
        if self._divide and batch is not None and batch.divisor is not None:
            divisor, col_feature = batch.divisor, self._col_feature
            out.callbacks.append(lambda t: divide_by_bag_lengths(t, divisor, col_feature))
        out.callbacks.extend(self._callbacks)
        return out

    def _forward_variable_batch(self, local_embs: torch.Tensor, sharding_ctx: EmbeddingShardingContext) -> Awaitable[torch.Tensor]:
        dims = self._embedding_dims
        out = self.reduce_scatter_variable_batch(local_embs, sharding_ctx.batch_size_per_rank_per_feature, dims)
        batch = None if sharding_ctx is None else sharding_ctx.input_dist_facts
        if self._divide and batch is not None and batch.divisor is not None:
            divisor, rows = batch.divisor, sharding_ctx.batch_size_per_feature_pre_a2a
            out.callbacks.append(lambda t: divide_rows(t, divisor, row_widths(dims, rows)))
        out.callbacks.extend(self._callbacks)
        return out


def row_widths(dims: List[int], batch_per_feature: List[int]) -> torch.Tensor:
    """Width of every row of a feature-major VBE flat tensor (``D_f`` repeated ``b_f`` times)."""
    return torch.repeat_interleave(torch.tensor(dims, dtype=torch.int64), torch.tensor(batch_per_feature, dtype=torch.int64))


class RwPooledEmbeddingSharding(
    RowPlacementQueries,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Row-wise pooled sharding (see the module docstring).

    Args:
        sharding_infos: the tables of one module planned ``row_wise``: one shard per rank in row order
            (zero-row shards included, as ``row_wise()`` plans them).
        env: world, rank and process group.
        device: where lookups and outputs live.
        need_pos: send ids' positions in their bags as weights (position-weighted feature processors); also
            on when a table's config has ``need_pos``.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
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
        self._env = env
        self._pg = require_pg(env, "row-wise")
        self._device = device
        self._need_pos = need_pos or any(i.embedding_config.need_pos for i in sharding_infos)
        self._world_size = env.world_size
        self._placement = row_wise_placement(sharding_infos, env.world_size, env.rank)

    @property
    def need_pos(self) -> bool:
        """Whether the input dist sends each id's position in its bag as its weight."""
        return self._need_pos

    def create_input_dist(self, device: Optional[torch.device] = None) -> RwSparseFeaturesDist:
        return RwSparseFeaturesDist(
            self._pg, self._placement.row_buckets(), self._placement.mean_features(),
            bucketize_pos=self._need_pos,
        )

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> GroupedPooledEmbeddingsLookup:
        lookup = GroupedPooledEmbeddingsLookup(
            grouped_configs=self._placement.local_grouped_configs,
            device=device if device is not None else self._device,
            pg=self._pg,
            feature_processor=feature_processor,
            sharding_type=ShardingType.ROW_WISE,
        )
        return prepare_lookup(lookup, self._placement.local_feature_order(), self._placement.feature_dims(), False)

    def create_output_dist(self, device: Optional[torch.device] = None) -> RwPooledEmbeddingDist:
        return RwPooledEmbeddingDist(self._pg, self.embedding_dims(), self.qcomm_codecs_registry)
