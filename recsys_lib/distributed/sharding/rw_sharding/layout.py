"""Row-wise layout: rows split in blocks of ``ceil(R / W)``; rank r holds block r.

Rank → rows (R=10, W=4, block 3; R=5, W=4, block 2)::

    R=10: rank 0: [0, 3)   rank 1: [3, 6)   rank 2: [6, 9)   rank 3: [9, 10)   sizes [3, 3, 3, 1]
    R=5:  rank 0: [0, 2)   rank 1: [2, 4)   rank 2: [4, 5)   rank 3: [5, 5)    sizes [2, 2, 1, 0]

Ranks past the last row get zero-row shards (offset R). The input dist sends id ``i`` to rank
``i // block`` as local row ``i - rank * block`` (``bucketize``); pooled outputs are partial sums,
combined by a reduce-scatter.

A plan's row blocks are a :class:`RowBuckets` value: per feature, the row boundaries ``[o_0=0, o_1, ..., o_W=R]``
of its table (:func:`row_boundaries` reads them from the shards). Id ``i`` goes to the bucket ``b`` with
``o_b <= i < o_{b+1}`` and becomes the local row ``i - o_b``::

    R=10, W=4: boundaries [0, 3, 6, 9, 10]     id 7 -> bucket 2, local row 1
    R=5,  W=4: boundaries [0, 2, 4, 5, 5]      bucket 3 is empty (a zero-row shard)
"""

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import torch

from recsys_lib.distributed.sharding._layout_types import Layout, LayoutRequest, check_request, positional


def block_size(rows: int, num_shards: int) -> int:
    """``ceil(rows / num_shards)`` (at least 1 so that ids map to a rank even for an empty table)."""
    if num_shards < 1:
        raise ValueError(f"row-wise sharding needs at least one shard, got {num_shards}")
    return max(1, -(-rows // num_shards))


def row_sizes(rows: int, num_shards: int) -> List[int]:
    """Rows of each shard: full blocks, one partial block, then empty shards."""
    b = block_size(rows, num_shards)
    return [max(0, min(b, rows - i * b)) for i in range(num_shards)]


def sizes_to_layout(row_counts: List[int], cols: int) -> Layout:
    offsets, start = [], 0
    for n in row_counts:
        offsets.append([start, 0])
        start += n
    return [[n, cols] for n in row_counts], offsets


def uneven_row_sizes(rows: int, device_memory_sizes: List[int]) -> List[int]:
    """Rows proportional to each device's memory (floor), the remainder on the last shard."""
    total = sum(device_memory_sizes)
    if total <= 0 or any(m < 0 for m in device_memory_sizes):
        raise ValueError(f"device_memory_sizes {device_memory_sizes} must be non-negative with a positive sum")
    sizes = [rows * m // total for m in device_memory_sizes[:-1]]
    return sizes + [rows - sum(sizes)]


def bucketed_row_sizes(rows: int, num_shards: int, num_buckets: int) -> List[int]:
    """Whole buckets of ``rows / num_buckets`` rows per shard: ``num_buckets // W`` each, one more on the first
    ``num_buckets % W`` shards (``rows=10, W=4, num_buckets=5`` → ``[4, 2, 2, 2]``; ``5, 4, 5`` → ``[2, 1, 1, 1]``).

    ``rows`` must divide into buckets and a bucket is never split, so ``num_buckets >= W``.
    """
    if num_buckets < num_shards:
        raise ValueError(
            f"Number of buckets ({num_buckets}) must be >= the number of ranks ({num_shards}): a bucket cannot be "
            "split across ranks. Increase total_num_buckets or reduce world_size."
        )
    if rows % num_buckets != 0:
        raise ValueError(f"num_buckets={num_buckets} must divide the number of rows {rows}")
    per_shard, extra = divmod(num_buckets, num_shards)
    per_bucket = rows // num_buckets
    return [per_bucket * (per_shard + (1 if r < extra else 0)) for r in range(num_shards)]


def layout(request: LayoutRequest) -> Layout:
    """One row block per rank (see the module table); memory-proportional or bucket-aligned on request."""
    rows, cols, world_size, _ = check_request(request)
    if request.device_memory_sizes is not None:
        memory = list(request.device_memory_sizes)
        if len(memory) != world_size:
            raise ValueError(f"device_memory_sizes has {len(memory)} entries for {world_size} ranks")
        return sizes_to_layout(uneven_row_sizes(rows, memory), cols)
    if request.num_buckets:  # 0 / None: plain row blocks
        return sizes_to_layout(bucketed_row_sizes(rows, world_size, request.num_buckets), cols)
    return sizes_to_layout(row_sizes(rows, world_size), cols)


def bucketize(ids: torch.Tensor, block: int, num_shards: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(shard, local_row)`` of every id: ``shard = id // block``, ``local_row = id - shard * block``.

    Raises ``ValueError`` for negative ids or ids past the last shard's rows.
    """
    if ids.numel() > 0:
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= block * num_shards:
            raise ValueError(f"row-wise bucketize: ids must be in [0, {block * num_shards}), got range [{lo}, {hi}]")
    shard = torch.div(ids, block, rounding_mode="floor")
    return shard, ids - shard * block


@dataclass(frozen=True)
class RowBuckets:
    """Row buckets of the features of one row-split sharding (a value: built once from the plan).

    Attributes:
        feature_names: features in the sharding's order (empty: any keys, as many as ``rows``).
        rows: table rows of each feature.
        boundaries: ``W + 1`` row boundaries of each feature's table.
        num_buckets: ``W`` (derived).
        blocks: per-feature block sizes when every table is split in equal blocks (last one partial), else None
            (derived once here, so the per-batch bucketing reads plain fields).
    """

    feature_names: Tuple[str, ...]
    rows: Tuple[int, ...]
    boundaries: Tuple[Tuple[int, ...], ...]
    num_buckets: int = field(init=False, repr=False, compare=False)
    blocks: Optional[Tuple[int, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_buckets", len(self.boundaries[0]) - 1 if self.boundaries else 0)
        blocks: Optional[Tuple[int, ...]] = ()
        for rows, bounds in zip(self.rows, self.boundaries):
            w = len(bounds) - 1
            block = max(1, -(-rows // w))
            if list(bounds) != [min(rows, b * block) for b in range(w + 1)]:
                blocks = None
                break
            blocks = blocks + (block,)
        object.__setattr__(self, "blocks", blocks)

    def uniform_blocks(self) -> Optional[List[int]]:
        """:attr:`blocks` as a list (None when some table's row blocks are not equal)."""
        return None if self.blocks is None else list(self.blocks)


def row_boundaries(table: str, rows: int, shard_rows: Sequence[Tuple[int, int]]) -> Tuple[int, ...]:
    """Boundaries from ``(row_offset, row_count)`` of a table's shards in bucket order; they must tile the rows.

    Example: ``row_boundaries("t", 5, [(0, 2), (2, 2), (4, 1), (5, 0)]) == (0, 2, 4, 5, 5)``.
    """
    bounds = [0]
    for offset, count in shard_rows:
        if offset != bounds[-1] or count < 0:
            raise ValueError(
                f"table {table!r}: row-wise shards must be consecutive row blocks in rank order; got "
                f"(offset, rows) = {list(shard_rows)}"
            )
        bounds.append(offset + count)
    if bounds[-1] != rows:
        raise ValueError(f"table {table!r}: row-wise shards cover {bounds[-1]} of {rows} rows")
    return tuple(bounds)


shard_sizes_and_offsets = positional(layout)
