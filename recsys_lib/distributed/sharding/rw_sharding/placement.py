"""Which row shards each rank holds, for the row-split strategies (RW, TWRW, GRID) — pure, no process group.

A :class:`RowUnit` is one block of columns of one table split by rows over an ordered list of ranks (the
*bucket ranks*): row-wise has one unit per table over all ranks, table-row-wise one unit per table over the
ranks of one host, grid one unit per column block over the ranks of one host. :class:`RowPlacement` turns
units sharing the same bucket ranks into per-rank table shards, kernel groups and the feature order
that the bucketized input and the pooled output follow::

    units t0 (R=10, cols 0..8), t1 (R=5) over ranks [0, 1, 2, 3]
    rank 0: t0 rows [0, 3),  t1 rows [0, 2)      rank 2: t0 rows [6, 9),  t1 rows [4, 5)
    rank 1: t0 rows [3, 6),  t1 rows [2, 4)      rank 3: t0 rows [9, 10), t1 rows [5, 5) (zero rows)

Every bucket rank holds one shard (possibly zero rows) of every unit. The sharding's feature order
(``feature_names``) is bucket 0's kernel order; a rank whose kernels differ (empty shards go to the dense
kernel) permutes its lookup's input and output (``local_feature_order``, ``_local_order.py``). MEAN tables
are looked up with SUM pooling; the strategy divides by the global bag length after the partial sums are
combined.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

from torch.distributed._shard.metadata import ShardMetadata

from recsys_lib.distributed._sharded.shard_tables import check_shards, global_metadata, make_table, shard_rank, spec_shards
from recsys_lib.distributed._tbe.grouping import group_tables
from recsys_lib.distributed._sharded.table_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    ShardedEmbeddingTable,
)
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets, row_boundaries
from recsys_lib.modules.embedding_configs import PoolingType


@dataclasses.dataclass
class RowUnit:
    """Columns ``[col, col + width)`` of table ``info.embedding_config``, split by rows over ``ranks``."""

    info: Any
    col: int
    width: int
    ranks: List[int]
    shards: List[ShardMetadata]  # in ``ranks`` order
    global_md: Any


def units_by_column_block(sharding_infos: List[Any], world_size: int, what: str) -> List[RowUnit]:
    """One unit per (table, column block): the shards with that column offset, ordered by row offset."""
    units: List[RowUnit] = []
    for info in sharding_infos:
        config = info.embedding_config
        shards = spec_shards(config.name, info.param_sharding)
        check_shards(config.name, config.num_embeddings, config.embedding_dim, shards, world_size)
        gmd = global_metadata(config, shards)
        by_col: Dict[Tuple[int, int], List[ShardMetadata]] = {}
        for md in shards:
            by_col.setdefault((int(md.shard_offsets[1]), int(md.shard_sizes[1])), []).append(md)
        for (col, width), mds in sorted(by_col.items()):
            mds = sorted(mds, key=lambda m: (int(m.shard_offsets[0]), shard_rank(m)))
            ranks = [shard_rank(m) for m in mds]
            if len(set(ranks)) != len(ranks):
                raise ValueError(f"table {config.name!r}: {what} puts two row shards of one column block on one rank "
                                 f"(ranks {ranks})")
            units.append(RowUnit(info, col, width, ranks, mds, gmd))
    return units


class RowPlacement:
    """Shards, kernel groups and feature order of units sharing the same bucket ranks (module docstring).

    Args:
        units: the units (all with ``unit.ranks == bucket_ranks``).
        bucket_ranks: ranks holding bucket 0, 1, ... of every unit.
        rank: this process's rank (it may not be a bucket rank: then it looks nothing up).
    """

    def __init__(self, units: List[RowUnit], bucket_ranks: Sequence[int], rank: int) -> None:
        self.bucket_ranks = list(bucket_ranks)
        self.rank = rank
        self.units = list(units)
        tables: List[List[ShardedEmbeddingTable]] = [[] for _ in self.bucket_ranks]
        self._unit_of_table: Dict[Tuple[str, int], RowUnit] = {}
        for unit in self.units:
            config = unit.info.embedding_config
            if unit.ranks != self.bucket_ranks:
                raise ValueError(
                    f"table {config.name!r}: row shards are on ranks {unit.ranks}, expected one shard on each of "
                    f"{self.bucket_ranks} in row order (zero-row shards included)"
                )
            for b, md in enumerate(unit.shards):
                t = make_table(config, unit.info.param_sharding.compute_kernel, int(md.shard_sizes[0]), unit.width,
                               md, unit.global_md, unit.info.fused_params)
                if t.pooling == PoolingType.MEAN:
                    t = dataclasses.replace(t, pooling=PoolingType.SUM)
                if t.local_rows == 0:
                    # FBGEMM's CPU fused TBE (1.8) corrupts its backward with zero-row tables (wrong rows updated,
                    # or "more than 2B rows"); an empty shard has nothing to train, so the dense TBE serves it.
                    t = dataclasses.replace(t, compute_kernel=EmbeddingComputeKernel.DENSE)
                tables[b].append(t)
            self._unit_of_table[(config.name, unit.col)] = unit
        self.tables_per_bucket = tables
        self.grouped_per_bucket: List[List[GroupedEmbeddingConfig]] = group_tables(tables)

    @property
    def local_bucket(self) -> Optional[int]:
        return self.bucket_ranks.index(self.rank) if self.rank in self.bucket_ranks else None

    @property
    def local_grouped_configs(self) -> List[GroupedEmbeddingConfig]:
        b = self.local_bucket
        return [] if b is None else self.grouped_per_bucket[b]

    def local_feature_order(self) -> Optional[List[int]]:
        """``order[i]`` = sharding-order index of this rank's ``i``-th lookup feature, or None when equal.

        Empty shards use another kernel than their table's shards elsewhere, so a rank's kernel groups (and
        with them its lookup's feature order) may differ from bucket 0's, which fixes the sharding order.
        """
        b = self.local_bucket
        if b is None:
            return None
        canon = _feature_keys(self._groups())
        local = _feature_keys(self.grouped_per_bucket[b])
        order = [canon.index(k) for k in local]
        return None if order == list(range(len(order))) else order

    def _groups(self) -> List[GroupedEmbeddingConfig]:
        return self.grouped_per_bucket[0] if self.grouped_per_bucket else []

    def _tables_in_order(self) -> List[ShardedEmbeddingTable]:
        return [t for g in self._groups() for t in g.embedding_tables]

    def units_in_order(self) -> List[RowUnit]:
        return [self._unit_of_table[(t.name, _col(t))] for t in self._tables_in_order()]

    def feature_names(self) -> List[str]:
        return [f for g in self._groups() for f in g.feature_names()]

    def embedding_names(self) -> List[str]:
        return [n for g in self._groups() for n in g.embedding_names()]

    def embedding_dims(self) -> List[int]:
        return [d for g in self._groups() for d in g.embedding_dims()]

    def feature_dims(self) -> List[int]:
        """Pooled width of each feature, in sharding order."""
        return [t.local_cols for t in self._tables_in_order() for _ in t.feature_names]

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        b = self.local_bucket if self.local_bucket is not None else 0
        groups = self.grouped_per_bucket[b] if self.grouped_per_bucket else []
        return [m for g in groups for m in g.embedding_shard_metadata()]

    def segments(self) -> List[Tuple[str, int, int]]:
        """``(embedding_name, column_offset, width)`` of every output column block, in output order."""
        return [(n, _col(t), t.local_cols) for t in self._tables_in_order() for n in t.embedding_names]

    def mean_features(self) -> List[bool]:
        """Per feature (in order): does its table pool by MEAN."""
        return [u.info.embedding_config.pooling == PoolingType.MEAN
                for u in self.units_in_order() for _ in u.info.embedding_config.feature_names]

    def all_tables(self) -> List[ShardedEmbeddingTable]:
        return [t for tables in self.tables_per_bucket for t in tables]

    def row_buckets(self) -> RowBuckets:
        names: List[str] = []
        rows: List[int] = []
        bounds: List[Tuple[int, ...]] = []
        for unit in self.units_in_order():
            config = unit.info.embedding_config
            b = row_boundaries(config.name, config.num_embeddings,
                               [(int(m.shard_offsets[0]), int(m.shard_sizes[0])) for m in unit.shards])
            for f in config.feature_names:
                names.append(f)
                rows.append(config.num_embeddings)
                bounds.append(b)
        return RowBuckets(tuple(names), tuple(rows), tuple(bounds))


def _feature_keys(groups: List[GroupedEmbeddingConfig]) -> List[Tuple[str, int, str]]:
    return [(t.name, _col(t), f) for g in groups for t in g.embedding_tables for f in t.feature_names]


def _col(t: ShardedEmbeddingTable) -> int:
    return 0 if t.local_metadata is None else int(t.local_metadata.shard_offsets[1])


def row_wise_placement(sharding_infos: List[Any], world_size: int, rank: int) -> RowPlacement:
    """Row-wise: one unit per table (all columns) over ranks ``0 .. W-1``."""
    units = units_by_column_block(sharding_infos, world_size, "row-wise")
    for u in units:
        cfg = u.info.embedding_config
        if u.col != 0 or u.width != cfg.embedding_dim:
            raise ValueError(f"table {cfg.name!r}: row-wise shards must hold all {cfg.embedding_dim} columns, got "
                             f"a shard of columns [{u.col}, {u.col + u.width})")
    return RowPlacement(units, list(range(world_size)), rank)


class RowPlacementQueries:
    """``EmbeddingSharding`` queries of a one-level row-split sharding, from ``self._placement`` (flat mix-in):
    every rank looks up every feature."""

    _placement: RowPlacement
    _world_size: int

    def feature_names(self) -> List[str]:
        return self._placement.feature_names()

    def feature_names_per_rank(self) -> List[List[str]]:
        return [self.feature_names() for _ in range(self._world_size)]

    def features_per_rank(self) -> List[int]:
        return [len(self.feature_names())] * self._world_size

    def embedding_names(self) -> List[str]:
        return self._placement.embedding_names()

    def embedding_dims(self) -> List[int]:
        return self._placement.embedding_dims()

    def embedding_names_per_rank(self) -> List[List[str]]:
        return [self.embedding_names() for _ in range(self._world_size)]

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        return self._placement.embedding_shard_metadata()

    def embedding_tables(self) -> List[ShardedEmbeddingTable]:
        return self._placement.all_tables()
