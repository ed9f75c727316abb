"""Table-wise layout: the whole table on one rank; features routed to the rank of their table.

Rank → rows (tables t0 → rank 0, t1 → rank 1, t2 → rank 0; W=2)::

    rank 0: t0 rows [0, R0), t2 rows [0, R2)
    rank 1: t1 rows [0, R1)

The input dist sends each feature to its table's rank (``KJTAllToAll`` with ``features_per_rank``
after permuting keys into rank order, ``feature_order``); the pooled output dist all-to-alls
``[B_global, dim_sum_per_rank[r]]`` blocks back by batch. Column-wise sharding reuses all of this
with each column shard acting as a table.
"""

from typing import List, Optional, Sequence

from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, check_request, positional


def layout(request: LayoutRequest) -> Layout:
    """One shard: the whole table."""
    rows, cols, world_size, local_world_size = check_request(request)
    return [[rows, cols]], [[0, 0]]


def tables_per_rank(table_ranks: Sequence[int], world_size: int) -> List[List[int]]:
    """Indices of the tables (shards) each rank holds, in table order.

    Example: ``tables_per_rank([0, 1, 0], 2) == [[0, 2], [1]]``.
    """
    out: List[List[int]] = [[] for _ in range(world_size)]
    for t, r in enumerate(table_ranks):
        if not 0 <= r < world_size:
            raise ValueError(f"table {t} is placed on rank {r}, outside the world of size {world_size}")
        out[r].append(t)
    return out


def features_per_rank(per_rank: List[List[int]], num_features_per_table: Sequence[int]) -> List[int]:
    """Number of features each rank looks up (the ``splits`` of the KJT all-to-all)."""
    return [sum(num_features_per_table[t] for t in tables) for tables in per_rank]


def dim_sum_per_rank(per_rank: List[List[int]], num_features_per_table: Sequence[int], dims: Sequence[int]) -> List[int]:
    """Pooled output width of each rank: Σ over its tables of (features × dim)."""
    return [sum(num_features_per_table[t] * dims[t] for t in tables) for tables in per_rank]


def feature_order(per_rank: List[List[int]], num_features_per_table: Sequence[int]) -> List[int]:
    """Permutation of the input features (table order, each table's features consecutive) into rank order.

    ``kjt.permute(feature_order(...))`` puts rank 0's features first, then rank 1's, ...
    """
    starts = [sum(num_features_per_table[:t]) for t in range(len(num_features_per_table))]
    return [starts[t] + i for tables in per_rank for t in tables for i in range(num_features_per_table[t])]


shard_sizes_and_offsets = positional(layout)
