"""Table-column-wise layout: column blocks of one table, placed on the ranks of one host.

Rank → rows/columns (table R × 256, block 128, host 0 of L=2)::

    rank 0 (host 0): rows [0, R), cols [0, 128)
    rank 1 (host 0): rows [0, R), cols [128, 256)

The column math is column-wise's; only placement differs (``shard_ranks``).
"""

from typing import List, Optional

from recsys_lib.distributed.comm import host_ranks
from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, positional
from recsys_lib.distributed.sharding.cw_sharding import layout as cw_layout


def layout(request: LayoutRequest) -> Layout:
    """Same blocks as column-wise."""
    return cw_layout.layout(request)


def shard_ranks(num_shards: int, host_index: int, local_world_size: int) -> List[int]:
    """Ranks of the shards: round-robin over the ranks of host ``host_index``."""
    ranks = host_ranks(host_index, local_world_size)
    return [ranks[i % local_world_size] for i in range(num_shards)]


shard_sizes_and_offsets = positional(layout)
