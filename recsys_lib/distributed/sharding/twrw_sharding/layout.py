"""Table-row-wise layout: row-wise over the ranks of one host (``table_row_wise(host_index)``).

Rank → rows (R=10, W=4, L=2, host 1)::

    rank 0, 1 (host 0): nothing
    rank 2 (host 1): rows [0, 5)      rank 3 (host 1): rows [5, 10)

Ids are bucketized by row block within the host; pooled partial sums are reduce-scattered inside
the host, then all-to-all'ed across hosts (intra- then cross-host groups from ``ShardingEnv``).
"""

from typing import List, Optional

from recsys_lib.distributed.comm import host_ranks
from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, check_request, positional
from recsys_lib.distributed.sharding.rw_sharding import layout as rw_layout


def layout(request: LayoutRequest) -> Layout:
    """One row block per rank of the host: ``local_world_size`` shards."""
    rows, cols, world_size, local_world_size = check_request(request)
    return rw_layout.sizes_to_layout(rw_layout.row_sizes(rows, local_world_size), cols)


def shard_ranks(host_index: int, local_world_size: int, world_size: int) -> List[int]:
    """Ranks of host ``host_index`` (one shard each, in row order)."""
    if not 0 <= host_index < world_size // local_world_size:
        raise ValueError(
            f"host_index {host_index} out of range: {world_size // local_world_size} hosts of {local_world_size} ranks"
        )
    return host_ranks(host_index, local_world_size)


shard_sizes_and_offsets = positional(layout)
