"""Shared vocabulary of the per-strategy layout functions (pure, no process group).

A layout is ``(sizes, offsets)``: one ``[rows, cols]`` size and one ``[row_offset, col_offset]`` per
shard, in shard order (the order of ``ParameterSharding.ranks``).
"""

import inspect
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

Layout = Tuple[List[List[int]], List[List[int]]]


def check_table_shape(rows: int, cols: int) -> None:
    if rows < 0 or cols <= 0:
        raise ValueError(f"table shape must be rows >= 0 and cols > 0, got [{rows}, {cols}]")


def check_world(world_size: int, local_world_size: int) -> None:
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if local_world_size < 1 or world_size % local_world_size != 0:
        raise ValueError(f"local_world_size={local_world_size} must be >= 1 and divide world_size={world_size}")


@dataclass(frozen=True)
class LayoutRequest:
    """What a layout function is asked: one table's shape and the world it is sharded over.

    Attributes:
        rows / cols: the table's shape ``[R, D]``.
        world_size / local_world_size: ranks in all (``W``) and per host.
        col_wise_shard_dim: column-block width of column-wise-like strategies (None: their default).
        device_memory_sizes: row-wise only: rows proportional to each rank's memory.
        num_buckets: row-wise only: shards hold whole buckets of ``R / num_buckets`` rows.
    """

    rows: int
    cols: int
    world_size: int
    local_world_size: int
    col_wise_shard_dim: Optional[int] = None
    device_memory_sizes: Optional[Tuple[int, ...]] = None
    num_buckets: Optional[int] = None


LayoutFn = Callable[[LayoutRequest], Layout]


def check_request(request: LayoutRequest) -> Tuple[int, int, int, int]:
    """``(rows, cols, world_size, local_world_size)`` of a request, after the shape and world checks."""
    check_table_shape(request.rows, request.cols)
    check_world(request.world_size, request.local_world_size)
    return request.rows, request.cols, request.world_size, request.local_world_size


def request_of(
    rows: int,
    cols: int,
    world_size: int,
    local_world_size: int,
    col_wise_shard_dim: Optional[int] = None,
    device_memory_sizes: Optional[List[int]] = None,
    num_buckets: Optional[int] = None,
) -> LayoutRequest:
    """The :class:`LayoutRequest` of the positional ``shard_sizes_and_offsets`` arguments."""
    memory = None if device_memory_sizes is None else tuple(device_memory_sizes)
    return LayoutRequest(rows, cols, world_size, local_world_size, col_wise_shard_dim, memory, num_buckets)


def positional(layout: LayoutFn) -> Callable[..., Layout]:
    """``shard_sizes_and_offsets(rows, cols, world_size, local_world_size, col_wise_shard_dim=None,
    device_memory_sizes=None, num_buckets=None)`` calling ``layout`` with one :class:`LayoutRequest`."""

    def shard_sizes_and_offsets(*args: Any, **kwargs: Any) -> Layout:
        return layout(request_of(*args, **kwargs))

    shard_sizes_and_offsets.__doc__ = layout.__doc__
    shard_sizes_and_offsets.__signature__ = inspect.signature(request_of).replace(  # type: ignore[attr-defined]
        return_annotation=Layout
    )
    return shard_sizes_and_offsets
