"""Row-wise pooled sharding (EBC): every table split in row blocks of ``ceil(R / W)``, block r on rank r.

Rank → rows (t0: R=10, t1: R=5; W=4)::

    rank 0: t0 [0, 3)   t1 [0, 2)        rank 2: t0 [6, 9)   t1 [4, 5)
    rank 1: t0 [3, 6)   t1 [2, 4)        rank 3: t0 [9, 10)  t1 [5, 5)  (zero rows)

Per batch (``F`` features, this rank's batch ``B``):

1. input dist: ids checked against their table's rows, bucketized by row block (:func:`bucketize_features`:
   one FBGEMM op over the boundaries in ``layout.RowBuckets``), one ``KJTAllToAll`` with ``splits = [F] * W``:
   rank r receives bucket r of every rank's batch;
2. lookup: partial pooled sums ``[ΣB_k, ΣD]`` over the local rows (MEAN tables are looked up as SUM);
3. output dist: one reduce-scatter sums the partials and hands rank r its rows ``[B, ΣD]``; MEAN columns
   are then divided by the *global* bag length (this rank's original lengths), so a bag split over
   several shards averages over all its ids (TorchRec divides per shard, torchrec#2362).
"""

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

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
from recsys_lib.distributed._sharded.body import check_ids
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
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets, bucketed_row_sizes, row_sizes
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


# ---- input dist: row bucketing (pure + one FBGEMM op, see layout.RowBuckets) ----


def bucketize_features(
    kjt: KeyedJaggedTensor,
    buckets: RowBuckets,
    bucketize_pos: bool = False,
    sequence: bool = False,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor]]:
    """Cuts ``kjt`` (keys = ``buckets.feature_names``) into row buckets (see the module docstring).

    Returns ``(bucketized, unbucketize_permute)``; the permute is ``None`` unless ``sequence`` (and ``None``
    for a single bucket, where it would be the identity). A variable-batch KJT stays variable-batch (each
    bucket copy keeps the per-key batch sizes).
    """
    if buckets.feature_names and list(kjt.keys()) != list(buckets.feature_names):
        raise ValueError(f"row-wise bucketize: KJT keys {kjt.keys()} differ from {list(buckets.feature_names)}")
    if len(kjt.keys()) != len(buckets.rows):
        raise ValueError(f"row-wise bucketize: KJT has {len(kjt.keys())} keys {kjt.keys()}, the dist was built for "
                         f"{len(buckets.rows)} features")
    w = buckets.num_buckets
    if w == 1:  # one shard: ids, order and local rows are unchanged (FBGEMM's op would cost a full pass)
        return _single_bucket(kjt, bucketize_pos), None
    values = kjt.values()
    lengths = kjt.lengths()
    vbe = kjt.variable_stride_per_key()
    blocks: Optional[Sequence[int]] = buckets.blocks
    row_pos: Optional[List[torch.Tensor]] = None
    if blocks is None:
        blocks = [max(1, -(-r // w)) for r in buckets.rows]
        row_pos = [torch.tensor(list(b), dtype=values.dtype, device=values.device) for b in buckets.boundaries]
    batch_per_feature: Optional[torch.Tensor] = None
    max_b = -1
    if vbe:
        strides = kjt.stride_per_key()
        batch_per_feature = torch.tensor(strides, dtype=values.dtype, device=values.device)
        max_b = max(strides) if strides else 0
    out_lengths, out_values, out_weights, out_pos, permute = torch.ops.fbgemm.block_bucketize_sparse_features(
        lengths.to(values.dtype),
        values,
        bucketize_pos,
        sequence,
        torch.tensor(blocks, dtype=values.dtype, device=values.device),
        w,
        kjt.weights_or_none(),
        batch_size_per_feature=batch_per_feature,
        max_B=max_b,
        block_bucketize_pos=row_pos,
    )
    weights = out_pos.to(torch.float32) if bucketize_pos and out_pos is not None else out_weights
    keys = list(kjt.keys()) * w
    if vbe:
        spkpr = kjt.stride_per_key_per_rank() * w
        out = KeyedJaggedTensor(keys=keys, values=out_values, weights=weights, lengths=out_lengths.to(lengths.dtype),
                                stride_per_key_per_rank=spkpr)
    else:
        out = KeyedJaggedTensor(keys=keys, values=out_values, weights=weights, lengths=out_lengths.to(lengths.dtype),
                                stride=kjt.stride())
    return out, permute if sequence else None


def _single_bucket(kjt: KeyedJaggedTensor, bucketize_pos: bool) -> KeyedJaggedTensor:
    if not bucketize_pos:
        return kjt
    values = kjt.values()
    pos = torch.ops.fbgemm.offsets_range(kjt.offsets().to(torch.int64), values.numel()).to(torch.float32)
    vbe = kjt.variable_stride_per_key()
    return KeyedJaggedTensor(
        keys=kjt.keys(), values=values, weights=pos, lengths=kjt.lengths(), stride=None if vbe else kjt.stride(),
        stride_per_key_per_rank=kjt.stride_per_key_per_rank() if vbe else None,
    )


def mean_divisor(kjt: KeyedJaggedTensor, feature_mask: Sequence[bool]) -> Optional[torch.Tensor]:
    """``[B, F]`` bag lengths of the features with ``feature_mask`` (others 1), clamped to >= 1; ``None`` if no
    feature is masked (variable-batch KJT: 1-D, one entry per bag in key-major order). Dividing partial sums, once summed over shards, by this gives the global mean."""
    if not any(feature_mask):
        return None
    if kjt.variable_stride_per_key():  # one entry per bag, feature-major (the layout of VBE pooled outputs)
        mask = torch.repeat_interleave(
            torch.tensor(list(feature_mask), dtype=torch.bool, device=kjt.device()),
            torch.tensor(kjt.stride_per_key(), dtype=torch.int64, device=kjt.device()),
        )
        bags = kjt.lengths().view(-1).to(torch.float32)
        return torch.where(mask, bags.clamp(min=1.0), torch.ones_like(bags))
    f = len(kjt.keys())
    lengths = kjt.lengths().view(f, -1).t().to(torch.float32)
    mask = torch.tensor(list(feature_mask), dtype=torch.bool, device=lengths.device)
    return torch.where(mask, lengths.clamp(min=1.0), torch.ones_like(lengths))


# ---- the strategy's dists and sharding ----


class LocalTensors(Awaitable[KeyedJaggedTensor]):
    """The input dist's result in a world of one rank: the bucketized KJT itself (and its batch size)."""

    def __init__(self, kjt: KeyedJaggedTensor) -> None:
        super().__init__()
        self._kjt = kjt
        self._stride_per_rank: Optional[List[int]] = None if kjt.variable_stride_per_key() else [kjt.stride()]

    def _wait_impl(self) -> KeyedJaggedTensor:
        return self._kjt


def default_row_buckets(
    feature_hash_sizes: List[int],
    num_buckets: int,
    feature_total_num_buckets: Optional[List[int]] = None,
) -> RowBuckets:
    """Row buckets of the plan helpers' layouts (pure): ``ceil(R / W)`` blocks, or whole hash buckets per rank
    when a feature has ``feature_total_num_buckets`` (``rw_sharding/layout.py``). Feature names are left empty:
    the dist then takes the KJT's keys as they come (TorchRec's constructor knows only the row counts)."""
    bounds: List[Tuple[int, ...]] = []
    for i, rows in enumerate(feature_hash_sizes):
        total = None if feature_total_num_buckets is None else feature_total_num_buckets[i]
        sizes = bucketed_row_sizes(rows, num_buckets, total) if total else row_sizes(rows, num_buckets)
        b = [0]
        for n in sizes:
            b.append(b[-1] + n)
        bounds.append(tuple(b))
    return RowBuckets((), tuple(int(r) for r in feature_hash_sizes), tuple(bounds))


def restore_global_ids(bucketized: KeyedJaggedTensor, buckets: RowBuckets) -> KeyedJaggedTensor:
    """Local rows back to table rows: bucket ``b``'s ids of feature ``f`` plus the bucket's first row."""
    starts = [bounds[b] for b in range(buckets.num_buckets) for bounds in buckets.boundaries]
    values = bucketized.values()
    shift = torch.repeat_interleave(
        torch.tensor(starts, dtype=values.dtype, device=values.device),
        torch.tensor(bucketized.length_per_key(), dtype=torch.int64, device=values.device),
    )
    return KeyedJaggedTensor(
        keys=bucketized.keys(), values=values + shift, weights=bucketized.weights_or_none(),
        lengths=bucketized.lengths(), stride=None if bucketized.variable_stride_per_key() else bucketized.stride(),
        stride_per_key_per_rank=bucketized.stride_per_key_per_rank() if bucketized.variable_stride_per_key() else None,
    )


class RwSparseFeaturesDist(BaseSparseFeaturesDist[KeyedJaggedTensor]):
    """Checks ids, bucketizes by row block and all-to-alls the buckets (see the module docstring).

    Args:
        pg: process group of the all-to-all (``W`` ranks, one row block each).
        num_features: features of the KJTs it receives (in the sharding's order).
        feature_hash_sizes: table rows of each feature (blocks of ``ceil(R / W)`` rows per rank).
        feature_total_num_buckets: per feature, hash buckets of its table (whole buckets per rank, as
            ``row_wise(num_buckets=...)`` places them); ``None``: row blocks.
        device: kept for TorchRec's signature (tensors follow the input).
        is_sequence: also compute the unbucketize permutation (EC).
        has_feature_processor: send each id's position in its bag as its weight when the KJT has no weights.
        need_pos: send positions as weights when the KJT has weights.
        keep_original_indices: send table rows instead of rows local to the block.
        virtual_table_feature_num_buckets: hash buckets of virtual tables (used as ``feature_total_num_buckets``
            when that is not given).
        zch_sizes: per feature, the zero-collision table size (kept; buckets come from the counts above).

    Sharding classes build it from their plan's actual row boundaries with :meth:`from_row_buckets`.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        num_features: int,
        feature_hash_sizes: List[int],
        feature_total_num_buckets: Optional[List[int]] = None,
        device: Optional[torch.device] = None,
        is_sequence: bool = False,
        has_feature_processor: bool = False,
        need_pos: bool = False,
        keep_original_indices: bool = False,
        virtual_table_feature_num_buckets: Optional[List[int]] = None,
        zch_sizes: Optional[List[int]] = None,
    ) -> None:
        super().__init__()
        if len(feature_hash_sizes) != num_features:
            raise ValueError(f"RwSparseFeaturesDist: {len(feature_hash_sizes)} feature_hash_sizes for "
                             f"{num_features} features")
        totals = feature_total_num_buckets if feature_total_num_buckets is not None \
            else virtual_table_feature_num_buckets
        buckets = default_row_buckets(feature_hash_sizes, dist.get_world_size(pg), totals)
        self._setup(pg, buckets, None, is_sequence, has_feature_processor, need_pos, None, None, 1)
        self._keep_original_indices = keep_original_indices
        self._zch_sizes = zch_sizes
        self._device = device

    @classmethod
    def from_row_buckets(
        cls,
        pg: dist.ProcessGroup,
        buckets: RowBuckets,
        mean_features: Optional[List[bool]] = None,
        is_sequence: bool = False,
        bucketize_pos: bool = False,
        key_permute: Optional[List[int]] = None,
        splits: Optional[List[int]] = None,
        stagger: int = 1,
    ) -> "RwSparseFeaturesDist":
        """The dist of a sharding, from its plan's row boundaries.

        Args:
            buckets: row buckets of the features (in the sharding's feature order).
            mean_features: per feature, whether its table pools by MEAN (the divisor is computed for those).
            bucketize_pos: send each id's position in its original bag as its weight.
            key_permute / splits / stagger: two-level strategies reorder the bucketized keys rank-major and send
                ``splits[r]`` of them to rank r (default: bucket r → rank r, ``[F] * W``).
        """
        out = cls.__new__(cls)
        BaseSparseFeaturesDist.__init__(out)
        out._setup(pg, buckets, mean_features, is_sequence, bucketize_pos, bucketize_pos, key_permute, splits,
                   stagger)
        return out

    def _setup(
        self,
        pg: dist.ProcessGroup,
        buckets: RowBuckets,
        mean_features: Optional[List[bool]],
        is_sequence: bool,
        has_feature_processor: bool,
        need_pos: bool,
        key_permute: Optional[List[int]],
        splits: Optional[List[int]],
        stagger: int,
    ) -> None:
        self._buckets = buckets
        num_features = len(buckets.rows)
        self._mean_features = list(mean_features or [False] * num_features)
        self._is_sequence = is_sequence
        self._has_feature_processor = has_feature_processor
        self._need_pos = need_pos
        self._key_permute = key_permute
        self._key_permute_t = None if key_permute is None else torch.tensor(key_permute, dtype=torch.int64)
        self._world = dist.get_world_size(pg)
        self._dist = KJTAllToAll(pg, splits if splits is not None else [num_features] * buckets.num_buckets, stagger)
        self._keep_original_indices = False
        self._zch_sizes: Optional[List[int]] = None
        self._device: Optional[torch.device] = None
        self.unbucketize_permute_tensor: Optional[torch.Tensor] = None  # last batch's (TorchRec attribute)
        self._check_ids = True  # off inside sharded modules, which check every input id before any input dist

    def forward(self, sparse_features: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        if self._check_ids:
            check_ids(sparse_features, self._buckets.rows, "row-wise input dist")
        divisor = mean_divisor(sparse_features, self._mean_features)
        # Positions replace the weights: for a feature processor when there are none, else only when asked.
        pos = self._has_feature_processor if sparse_features.weights_or_none() is None else self._need_pos
        bucketized, permute = bucketize_features(
            sparse_features, self._buckets, bucketize_pos=pos, sequence=self._is_sequence
        )
        if self._keep_original_indices:
            bucketized = restore_global_ids(bucketized, self._buckets)
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

    Two-level strategies call :meth:`reduce_scatter` / :meth:`reduce_scatter_variable_batch` themselves and
    divide after their last collective.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        embedding_dims: List[int],
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__()
        codecs = codecs_for(qcomm_codecs_registry, CommOp.POOLED_EMBEDDINGS_REDUCE_SCATTER)
        self._dist = PooledEmbeddingsReduceScatter(pg, codecs=codecs)
        self._vbe_dist = VariableBatchPooledEmbeddingsReduceScatter(pg, codecs=codecs)
        self._world = dist.get_world_size(pg)
        self._embedding_dims = list(embedding_dims)
        self._col_feature = column_features(embedding_dims)

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
        if batch is not None and batch.divisor is not None:
            divisor, col_feature = batch.divisor, self._col_feature
            out.callbacks.append(lambda t: divide_by_bag_lengths(t, divisor, col_feature))
        return out

    def _forward_variable_batch(self, local_embs: torch.Tensor, sharding_ctx: EmbeddingShardingContext) -> Awaitable[torch.Tensor]:
        dims = self._embedding_dims
        out = self.reduce_scatter_variable_batch(local_embs, sharding_ctx.batch_size_per_rank_per_feature, dims)
        batch = None if sharding_ctx is None else sharding_ctx.input_dist_facts
        if batch is not None and batch.divisor is not None:
            divisor, rows = batch.divisor, sharding_ctx.batch_size_per_feature_pre_a2a
            out.callbacks.append(lambda t: divide_rows(t, divisor, row_widths(dims, rows)))
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
        device_type_from_sharding_infos: the shards' device type(s) as the sharder read them from the plan
            (kept for TorchRec's signature; lookups and outputs follow ``device``).
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._device_type_from_sharding_infos = device_type_from_sharding_infos
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
        return RwSparseFeaturesDist.from_row_buckets(
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
