"""Which table shards, features and output columns each rank has, for the "placed" strategies (TW, CW, TWCW).

:class:`RankPlacement` is a value computed once from the plan (pure): the shards per rank
(``shard_tables_per_rank``), grouped into kernels per rank (``group_tables``), and everything in
*rank-major, kernel order* — the order in which the input all-to-all delivers features and the pooled
all-to-all delivers columns::

    rank 0: kernel g0 (t0: f0, f1) | kernel g1 (t2: f3)     rank 1: kernel g0 (t1: f2)
    feature_names() = [f0, f1, f3, f2]     features_per_rank() = [3, 1]

:class:`PlacementQueries` answers the ``EmbeddingSharding`` questions from ``self._placement`` (a flat
mix-in: the strategy classes stay one level below ``EmbeddingSharding``).
"""

from typing import Any, List, Optional

from recsys_lib.distributed._sharded.shard_tables import shard_tables_per_rank
from recsys_lib.distributed._tbe.grouping import group_tables
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig, ShardedEmbeddingTable


class RankPlacement:
    """Shards and kernels per rank (see the module docstring).

    Args:
        sharding_infos: the ``EmbeddingShardingInfo`` s of one strategy.
        world_size / rank: the world and this process's rank in it.
    """

    def __init__(self, sharding_infos: List[Any], world_size: int, rank: int) -> None:
        self.world_size = world_size
        self.rank = rank
        self.tables_per_rank: List[List[ShardedEmbeddingTable]] = shard_tables_per_rank(sharding_infos, world_size)
        self.grouped_per_rank: List[List[GroupedEmbeddingConfig]] = group_tables(self.tables_per_rank)

    @property
    def local_grouped_configs(self) -> List[GroupedEmbeddingConfig]:
        return self.grouped_per_rank[self.rank]

    def feature_names_per_rank(self) -> List[List[str]]:
        return [[f for g in groups for f in g.feature_names()] for groups in self.grouped_per_rank]

    def embedding_names_per_rank(self) -> List[List[str]]:
        return [[n for g in groups for n in g.embedding_names()] for groups in self.grouped_per_rank]

    def embedding_dims_per_rank(self) -> List[List[int]]:
        return [[d for g in groups for d in g.embedding_dims()] for groups in self.grouped_per_rank]

    def dim_sum_per_rank(self) -> List[int]:
        return [sum(g.dim_sum() for g in groups) for groups in self.grouped_per_rank]

    def shard_metadata_per_rank(self) -> List[List[Optional[Any]]]:
        return [[m for g in groups for m in g.embedding_shard_metadata()] for groups in self.grouped_per_rank]

    def tables_in_output_order(self) -> List[ShardedEmbeddingTable]:
        """Every shard, rank-major then kernel order (one entry per shard, not per feature)."""
        return [t for groups in self.grouped_per_rank for g in groups for t in g.embedding_tables]


class PlacementQueries:
    """``EmbeddingSharding`` queries answered from ``self._placement`` (flat mix-in)."""

    _placement: RankPlacement

    def feature_names_per_rank(self) -> List[List[str]]:
        return self._placement.feature_names_per_rank()

    def features_per_rank(self) -> List[int]:
        return [len(names) for names in self._placement.feature_names_per_rank()]

    def feature_names(self) -> List[str]:
        return [f for names in self._placement.feature_names_per_rank() for f in names]

    def embedding_names_per_rank(self) -> List[List[str]]:
        return self._placement.embedding_names_per_rank()

    def embedding_names(self) -> List[str]:
        return [n for names in self._placement.embedding_names_per_rank() for n in names]

    def embedding_dims(self) -> List[int]:
        return [d for dims in self._placement.embedding_dims_per_rank() for d in dims]

    def embedding_shard_metadata(self) -> List[Optional[Any]]:
        return [m for mds in self._placement.shard_metadata_per_rank() for m in mds]

    def embedding_tables(self) -> List[ShardedEmbeddingTable]:
        return self._placement.tables_in_output_order()

    def dim_sum_per_rank(self) -> List[int]:
        return self._placement.dim_sum_per_rank()


def output_segments(placement: RankPlacement) -> List[Any]:
    """``(embedding_name, column_offset, width)`` of every output segment, rank-major then kernel order.

    A segment is one feature of one shard: width ``local_cols``, placed at the shard's column offset.
    """
    out: List[Any] = []
    for groups in placement.grouped_per_rank:
        for g in groups:
            for t in g.embedding_tables:
                col = 0 if t.local_metadata is None else int(t.local_metadata.shard_offsets[1])
                for name in t.embedding_names:
                    out.append((name, col, t.local_cols))
    return out
