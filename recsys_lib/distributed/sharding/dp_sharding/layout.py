"""Data-parallel layout: every rank holds the whole table.

Rank → rows (table of R rows, W ranks)::

    rank 0: rows [0, R)    rank 1: rows [0, R)    ...    rank W-1: rows [0, R)
"""

from typing import List, Optional

from recsys_lib.distributed.sharding._layout_types import Layout, check_table_shape, check_world


def shard_sizes_and_offsets(
    rows: int,
    cols: int,
    world_size: int,
    local_world_size: int,
    col_wise_shard_dim: Optional[int] = None,
    device_memory_sizes: Optional[List[int]] = None,
    num_buckets: Optional[int] = None,
) -> Layout:
    """W identical full-table "shards" at offset [0, 0]."""
    check_table_shape(rows, cols)
    check_world(world_size, local_world_size)
    return [[rows, cols] for _ in range(world_size)], [[0, 0] for _ in range(world_size)]
