"""Column-wise layout: a table split into column blocks; each block is placed like a table (TW).

Rank → rows/columns (table R × 12, ``column_wise(ranks=[0, 1, 0])``, block 4)::

    rank 0: rows [0, R), cols [0, 4)  and  cols [8, 12)
    rank 1: rows [0, R), cols [4, 8)

With a planner shard dim (``col_wise_shard_dim``, default ``MIN_CW_DIM=128``) blocks are the smallest multiple of
4 at least that wide which divides the columns; without one, the table stays whole: 256 columns → ``[128, 128]``,
300 → ``[300]``, 12 with dim 4 → ``[4, 4, 4]``, 14 with dim 4 → ``[14]`` (TorchRec's rule). The pooled output,
gathered in rank order, is put back in column order by ``output_permute``.
"""

from typing import List, Optional, Sequence, Tuple

from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, check_request, positional

MIN_CW_DIM = 128


def base_dim(lower_bound: int, cols: int) -> int:
    """The smallest multiple of 4 in ``[lower_bound, cols)`` that divides ``cols``, else ``cols``."""
    for width in range(max(lower_bound, 1), cols):
        if cols % width == 0 and width % 4 == 0:
            return width
    return cols


def block_width(cols: int, col_wise_shard_dim: Optional[int]) -> int:
    """Column block width (see the module docstring); a falsy ``col_wise_shard_dim`` means ``MIN_CW_DIM``."""
    if col_wise_shard_dim is not None and col_wise_shard_dim < 0:
        raise ValueError(f"col_wise_shard_dim must be >= 0, got {col_wise_shard_dim}")
    block = min(base_dim(col_wise_shard_dim or MIN_CW_DIM, cols), cols)
    return block if block > 0 and cols % block == 0 else cols


def layout(request: LayoutRequest) -> Layout:
    """Equal blocks of :func:`block_width` columns (one block when no such width divides the columns)."""
    rows, cols, world_size, local_world_size = check_request(request)
    if cols <= 0:
        raise ValueError(f"column-wise sharding needs a table with columns, got {cols}")
    block = block_width(cols, request.col_wise_shard_dim)
    n = cols // block
    return [[rows, block] for _ in range(n)], [[0, block * i] for i in range(n)]


def even_column_split(cols: int, num_shards: int) -> List[int]:
    """``num_shards`` equal widths; ``cols`` must divide evenly (``column_wise(ranks=...)``)."""
    if num_shards < 1:
        raise ValueError(f"column-wise sharding needs at least one rank, got {num_shards}")
    if cols % num_shards != 0:
        raise ValueError(
            f"column-wise sharding: embedding dim {cols} is not divisible by the number of shards {num_shards}"
        )
    return [cols // num_shards] * num_shards


def explicit_column_split(cols: int, size_per_rank: Sequence[int]) -> List[int]:
    """Given widths (``column_wise(size_per_rank=...)``); must be positive and sum to ``cols``."""
    if any(s <= 0 for s in size_per_rank) or sum(size_per_rank) != cols:
        raise ValueError(f"column-wise sharding: size_per_rank {list(size_per_rank)} must be positive and sum to {cols}")
    return list(size_per_rank)


def widths_to_layout(rows: int, widths: Sequence[int]) -> Layout:
    """Sizes and offsets of consecutive column blocks of the given widths."""
    offsets, col = [], 0
    for w in widths:
        offsets.append([0, col])
        col += w
    return [[rows, w] for w in widths], offsets


def output_permute(shard_ranks: Sequence[int], shard_dims: Sequence[int], world_size: int) -> Tuple[List[int], List[int]]:
    """Block order restoring column order after the all-to-all (pure).

    The all-to-all output holds rank 0's blocks, then rank 1's, ... (each rank's in shard order).
    Returns ``(permute, dims_in_a2a_order)`` with ``permute[i]`` = a2a position of column block i.
    """
    order = [i for r in range(world_size) for i, sr in enumerate(shard_ranks) if sr == r]
    position = {shard: pos for pos, shard in enumerate(order)}
    return [position[i] for i in range(len(shard_ranks))], [shard_dims[i] for i in order]


shard_sizes_and_offsets = positional(layout)
