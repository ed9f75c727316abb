"""Shared vocabulary of the per-strategy layout functions (pure, no process group).

A layout is ``(sizes, offsets)``: one ``[rows, cols]`` size and one ``[row_offset, col_offset]`` per
shard, in shard order (the order of ``ParameterSharding.ranks``).
"""

from typing import List, Tuple

Layout = Tuple[List[List[int]], List[List[int]]]


def check_table_shape(rows: int, cols: int) -> None:
    if rows < 0 or cols <= 0:
        raise ValueError(f"table shape must be rows >= 0 and cols > 0, got [{rows}, {cols}]")


def check_world(world_size: int, local_world_size: int) -> None:
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if local_world_size < 1 or world_size % local_world_size != 0:
        raise ValueError(f"local_world_size={local_world_size} must be >= 1 and divide world_size={world_size}")
