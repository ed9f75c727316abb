"""Table-row-wise pooled sharding (EBC): each table on one host, split by rows over that host's ranks.

Rank → rows (W=4, L=2 ranks per host; t0 (R=10) on host 0, t1 (R=6) on host 1)::

    rank 0 (host 0): t0 [0, 5)      rank 2 (host 1): t1 [0, 3)
    rank 1 (host 0): t0 [5, 10)     rank 3 (host 1): t1 [3, 6)

It composes the two one-level strategies: row-wise inside a host, table-wise across hosts.

1. input dist (row-wise's ``RwSparseFeaturesDist``): ids bucketized into ``L`` row blocks, keys reordered
   rank-major (rank ``h*L + j`` gets bucket ``j`` of host ``h``'s features) and all-to-all'ed with source
   ranks *staggered* by local rank (``stagger = W / L``): rank 0, L, 2L, ..., then 1, L+1, ...;
2. lookup: partial sums ``[ΣB, D_h]`` over the local rows;
3. output dist: row-wise's reduce-scatter inside the host (local rank ``j`` gets the rows of ranks
   ``j, L+j, ...`` summed), then table-wise's pooled all-to-all across hosts (ranks with local rank ``j``)
   returns each rank its rows ``[B, D_0 | D_1 | ...]`` (host-major columns); then the MEAN division.

Grid sharding runs the same machinery on column blocks (``units``), see ``grid_sharding/pooled.py``.
"""

from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.vbe_layout import divide_rows
from recsys_lib.distributed.comm import host_ranks
from recsys_lib.distributed.embedding_lookup import GroupedPooledEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor, ShardedEmbeddingTable
from recsys_lib.distributed.sharding.rw_sharding._local_order import prepare_lookup
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets
from recsys_lib.distributed.sharding.rw_sharding.placement import RowPlacement, RowUnit, units_by_column_block
from recsys_lib.distributed.sharding.rw_sharding.pooled import (
    RwPooledEmbeddingDist,
    column_features,
    divide_by_bag_lengths,
    require_pg,
    row_widths,
)
from recsys_lib.distributed.sharding.tw_sharding.pooled import TwPooledEmbeddingDist
from recsys_lib.distributed.sharding.twrw_sharding.input_dist import TwRwSparseFeaturesDist, rank_major_key_order
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def staggered_batch_sizes(batch_size_per_rank: List[int], local_world_size: int) -> List[List[int]]:
    """``out[j]`` = batch sizes of ranks ``j, L+j, 2L+j, ...`` (the rows local rank ``j`` reduces)."""
    return [batch_size_per_rank[j::local_world_size] for j in range(local_world_size)]


def host_units(units: List[RowUnit], world_size: int, local_world_size: int, what: str) -> List[List[RowUnit]]:
    """Units per host; each unit's shards must be on all ranks of one host, in rank order."""
    per_host: List[List[RowUnit]] = [[] for _ in range(world_size // local_world_size)]
    for u in units:
        host = u.ranks[0] // local_world_size
        if u.ranks != host_ranks(host, local_world_size):
            raise ValueError(
                f"table {u.info.embedding_config.name!r}: {what} shards must be on the {local_world_size} ranks of one "
                f"host in row order (host {host}: ranks {host_ranks(host, local_world_size)}), got ranks {u.ranks}"
            )
        per_host[host].append(u)
    return per_host


class _Waited(Awaitable[torch.Tensor]):
    def __init__(self, fn: Callable[[], torch.Tensor]) -> None:
        super().__init__()
        self._fn = fn

    def _wait_impl(self) -> torch.Tensor:
        return self._fn()


class TwRwPooledEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """Intra-host reduce-scatter, then cross-host all-to-all, then the MEAN division (module docstring).

    Args:
        rank: this rank (global).
        cross_pg: the ranks with this rank's local rank, one per host.
        intra_pg: the ranks of this host (``L`` of them).
        dim_sum_per_node: ``D_h``, pooled width computed by host ``h`` (must equal the sums below).
        emb_dim_per_node_per_feature: ``[h][f]`` width of host ``h``'s feature ``f``.
        device: where outputs live.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
    """

    def __init__(
        self,
        rank: int,
        cross_pg: dist.ProcessGroup,
        intra_pg: dist.ProcessGroup,
        dim_sum_per_node: List[int],
        emb_dim_per_node_per_feature: List[List[int]],
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__()
        host_dims = [list(d) for d in emb_dim_per_node_per_feature]
        sums = [sum(d) for d in host_dims]
        if list(dim_sum_per_node) != sums:
            raise ValueError(
                f"dim_sum_per_node={list(dim_sum_per_node)} does not match emb_dim_per_node_per_feature sums {sums}"
            )
        self._rank = rank
        self._device = device
        self._local = dist.get_world_size(intra_pg)
        self._local_rank = dist.get_rank(intra_pg)
        self._host = dist.get_rank(cross_pg)
        self._intra = RwPooledEmbeddingDist(intra_pg, host_dims[self._host], qcomm_codecs_registry)
        self._cross = TwPooledEmbeddingDist(cross_pg, sums, host_dims, qcomm_codecs_registry=qcomm_codecs_registry)
        self._hosts = len(host_dims)
        self._host_dims = host_dims
        self._dims = [d for dims in host_dims for d in dims]
        self._col_feature = column_features(self._dims)

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is not None and sharding_ctx.variable_batch_per_feature:
            return self._forward_variable_batch(local_embs, sharding_ctx)
        if sharding_ctx is None or len(sharding_ctx.batch_size_per_rank) == 0:
            raise ValueError("table-row-wise output dist needs batch_size_per_rank in the sharding context")
        per_local = staggered_batch_sizes(sharding_ctx.batch_size_per_rank, self._local)
        reduced = self._intra.reduce_scatter(local_embs, [sum(b) for b in per_local])
        batch = None if sharding_ctx is None else sharding_ctx.input_dist_facts
        divisor = None if batch is None else batch.divisor
        cross_ctx = EmbeddingShardingContext(batch_size_per_rank=per_local[self._local_rank])
        col_feature = self._col_feature

        def finish() -> torch.Tensor:
            out = self._cross(reduced.wait(), cross_ctx).wait()
            return divide_by_bag_lengths(out, divisor, col_feature)

        return _Waited(finish)

    def _forward_variable_batch(
        self, local_embs: torch.Tensor, sharding_ctx: EmbeddingShardingContext
    ) -> Awaitable[torch.Tensor]:
        """VBE: the lookup's flat blocks come per source in staggered order (local rank-major, then host), so
        local rank ``j``'s sources ``j, L+j, ...`` are one contiguous run: reduce-scatter them as the pseudo
        features ``[host][feature]``, then all-to-all across hosts with each host's features."""
        hosts, dims_here = self._hosts, self._host_dims[self._host]
        per_source = sharding_ctx.batch_size_per_rank_per_feature or [[] for _ in range(hosts * self._local)]
        pseudo = [[b for y in range(hosts) for b in per_source[j * hosts + y]] for j in range(self._local)]
        reduced = self._intra.reduce_scatter_variable_batch(local_embs, pseudo, dims_here * hosts)
        mine = [per_source[self._local_rank * hosts + y] for y in range(hosts)]
        pre = sharding_ctx.batch_size_per_feature_pre_a2a
        cross_ctx = EmbeddingShardingContext(
            batch_size_per_rank_per_feature=mine, batch_size_per_feature_pre_a2a=pre, variable_batch_per_feature=True
        )
        batch = None if sharding_ctx is None else sharding_ctx.input_dist_facts
        divisor = None if batch is None else batch.divisor
        dims = self._dims

        def finish() -> torch.Tensor:
            out = self._cross(reduced.wait(), cross_ctx).wait()
            return out if divisor is None else divide_rows(out, divisor, row_widths(dims, pre))

        return _Waited(finish)


class TwRwPooledEmbeddingSharding(EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor,
                                                    torch.Tensor]):
    """Table-row-wise pooled sharding (see the module docstring).

    Args:
        sharding_infos: tables planned ``table_row_wise`` (``table_row_wise(host_index)``: one shard on each rank
            of the host, in row order).
        env: world, rank, process group; ranks per host from ``env.local_world_size``.
        device / need_pos / qcomm_codecs_registry: as ``RwPooledEmbeddingSharding``.

    Grid sharding runs it on column blocks (each block on its own host): :meth:`of_column_blocks`.
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        self._setup(sharding_infos, env, device, need_pos, qcomm_codecs_registry, False)

    @classmethod
    def of_column_blocks(
        cls,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> "TwRwPooledEmbeddingSharding":
        """The sharding of column-split tables (grid): every column block is a table-row-wise unit."""
        out = cls.__new__(cls)
        out._setup(sharding_infos, env, device, need_pos, qcomm_codecs_registry, True)
        return out

    def _setup(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device],
        need_pos: bool,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]],
        column_blocks: bool,
    ) -> None:
        EmbeddingSharding.__init__(self, qcomm_codecs_registry=qcomm_codecs_registry)
        what = "grid" if column_blocks else "table-row-wise"
        self._env = env
        self._pg = require_pg(env, what)
        self._device = device
        self._need_pos = need_pos or any(i.embedding_config.need_pos for i in sharding_infos)
        self._local = env.local_world_size
        self._hosts = env.world_size // self._local
        units = units_by_column_block(sharding_infos, env.world_size, what)
        if not column_blocks:
            for u in units:
                cfg = u.info.embedding_config
                if u.col != 0 or u.width != cfg.embedding_dim:
                    raise ValueError(f"table {cfg.name!r}: table-row-wise shards must hold all {cfg.embedding_dim} "
                                     f"columns (use grid_shard for column blocks)")
        self._per_host = [
            RowPlacement(hu, host_ranks(h, self._local), env.rank)
            for h, hu in enumerate(host_units(units, env.world_size, self._local, what))
        ]
        self._my_host = env.rank // self._local

    # ---- queries (host-major order) ----

    def feature_names(self) -> List[str]:
        return [f for p in self._per_host for f in p.feature_names()]

    def feature_names_per_rank(self) -> List[List[str]]:
        return [self._per_host[r // self._local].feature_names() for r in range(self._env.world_size)]

    def features_per_rank(self) -> List[int]:
        return [len(names) for names in self.feature_names_per_rank()]

    def embedding_names(self) -> List[str]:
        return [n for p in self._per_host for n in p.embedding_names()]

    def embedding_dims(self) -> List[int]:
        return [d for p in self._per_host for d in p.embedding_dims()]

    def embedding_names_per_rank(self) -> List[List[str]]:
        return [self._per_host[r // self._local].embedding_names() for r in range(self._env.world_size)]

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        return self._per_host[self._my_host].embedding_shard_metadata()

    def embedding_tables(self) -> List[ShardedEmbeddingTable]:
        return [t for p in self._per_host for t in p.all_tables()]

    def segments(self) -> List[Any]:
        """``(embedding_name, column_offset, width)`` per output column block, host-major."""
        return [s for p in self._per_host for s in p.segments()]

    @property
    def need_pos(self) -> bool:
        return self._need_pos

    # ---- factories ----

    def create_input_dist(self, device: Optional[torch.device] = None) -> TwRwSparseFeaturesDist:
        parts = [p.row_buckets() for p in self._per_host]
        buckets = RowBuckets(
            tuple(f for b in parts for f in b.feature_names), tuple(r for b in parts for r in b.rows),
            tuple(x for b in parts for x in b.boundaries),
        )
        features_per_host = [len(b.feature_names) for b in parts]
        return TwRwSparseFeaturesDist.from_row_buckets(
            self._pg, buckets, [m for p in self._per_host for m in p.mean_features()],
            key_permute=rank_major_key_order(features_per_host, self._local),
            splits=[features_per_host[r // self._local] for r in range(self._env.world_size)],
            stagger=self._hosts,
            bucketize_pos=self._need_pos,
        )

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> GroupedPooledEmbeddingsLookup:
        placement = self._per_host[self._my_host]
        lookup = GroupedPooledEmbeddingsLookup(
            grouped_configs=placement.local_grouped_configs,
            device=device if device is not None else self._device,
            pg=self._pg,
            feature_processor=feature_processor,
            sharding_type=ShardingType.TABLE_ROW_WISE,
        )
        return prepare_lookup(lookup, placement.local_feature_order(), placement.feature_dims(), False)

    def create_output_dist(self, device: Optional[torch.device] = None) -> TwRwPooledEmbeddingDist:
        intra, cross = self._env.intra_and_cross_node_pg(device)
        if intra is None or cross is None:
            raise RuntimeError("table-row-wise sharding: no intra-/cross-host process group for this rank")
        dims = [p.embedding_dims() for p in self._per_host]
        return TwRwPooledEmbeddingDist(
            self._env.rank, cross, intra, [sum(d) for d in dims], dims,
            device if device is not None else self._device, self.qcomm_codecs_registry,
        )
