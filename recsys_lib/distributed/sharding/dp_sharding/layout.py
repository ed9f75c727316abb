"""Data-parallel layout: every rank holds the whole table.

Rank → rows (table of R rows, W ranks)::

    rank 0: rows [0, R)    rank 1: rows [0, R)    ...    rank W-1: rows [0, R)
"""

from typing import List, Optional

from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, check_request, positional


def layout(request: LayoutRequest) -> Layout:
    """W identical full-table "shards" at offset [0, 0]."""
    rows, cols, world_size, local_world_size = check_request(request)
    return [[rows, cols] for _ in range(world_size)], [[0, 0] for _ in range(world_size)]


shard_sizes_and_offsets = positional(layout)
