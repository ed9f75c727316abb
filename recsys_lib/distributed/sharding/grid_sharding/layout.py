"""Grid layout: column blocks (one per host), each split row-wise over that host's ranks.

Rank → rows/columns (table 10 × 8, ``grid_shard(host_indexes=[0, 1])``, W=4, L=2)::

    rank 0 (host 0): rows [0, 5),  cols [0, 4)      rank 1 (host 0): rows [5, 10), cols [0, 4)
    rank 2 (host 1): rows [0, 5),  cols [4, 8)      rank 3 (host 1): rows [5, 10), cols [4, 8)

Composition: column-wise blocks (``cw_sharding.layout``) × row-wise blocks within a host
(``twrw_sharding.layout``). Shard order: column block major, then local rank.
"""

from typing import List, Optional, Sequence

from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, positional
from recsys_lib.distributed.sharding.cw_sharding import layout as cw_layout
from recsys_lib.distributed.sharding.twrw_sharding import layout as twrw_layout


def compose(rows: int, column_layout: Layout, world_size: int, local_world_size: int) -> Layout:
    """Splits every column block of ``column_layout`` row-wise over ``local_world_size`` ranks."""
    sizes: List[List[int]] = []
    offsets: List[List[int]] = []
    for (_, width), (_, col) in zip(*column_layout):
        row_sizes, row_offsets = twrw_layout.shard_sizes_and_offsets(rows, width, world_size, local_world_size)
        for (r, w), (ro, _) in zip(row_sizes, row_offsets):
            sizes.append([r, w])
            offsets.append([ro, col])
    return sizes, offsets


def layout(request: LayoutRequest) -> Layout:
    """Column blocks as column-wise (planner shard dim), each split over a host's ranks."""
    return compose(request.rows, cw_layout.layout(request), request.world_size, request.local_world_size)


def host_grid(rows: int, cols: int, host_indexes: Sequence[int], world_size: int, local_world_size: int) -> Layout:
    """``grid_shard(host_indexes)``: equal column blocks, one per listed host, rows over the host's ranks."""
    widths = cw_layout.even_column_split(cols, len(host_indexes))
    return compose(rows, cw_layout.widths_to_layout(rows, widths), world_size, local_world_size)


def shard_ranks(host_indexes: Sequence[int], local_world_size: int, world_size: int) -> List[int]:
    """Ranks of the shards of ``host_grid``: for each host, its ranks in order."""
    return [r for h in host_indexes for r in twrw_layout.shard_ranks(h, local_world_size, world_size)]


shard_sizes_and_offsets = positional(layout)
