"""Run a function on one rank and share its result (used by ``ShardingPlanner.collective_plan``)."""

import functools
from typing import Any, Callable, Optional, TypeVar

import torch.distributed as dist

T = TypeVar("T")


def is_leader(pg: Optional[dist.ProcessGroup], leader_rank: int = 0) -> bool:
    """Whether this process is rank ``leader_rank`` of ``pg`` (no group: rank 0 leads)."""
    if pg is None:
        return leader_rank == 0
    return dist.get_rank(pg) == leader_rank


def invoke_on_rank_and_broadcast_result(
    pg: dist.ProcessGroup, rank: int, func: Callable[..., T], *args: Any, **kwargs: Any
) -> T:
    """Runs ``func`` on group rank ``rank`` only and returns its (pickled, broadcast) result on every rank."""
    size = dist.get_world_size(pg)
    if not 0 <= rank < size:
        raise ValueError(f"invoke_on_rank_and_broadcast_result: rank {rank} outside the group of size {size}")
    objects = [func(*args, **kwargs) if dist.get_rank(pg) == rank else None]
    if size > 1:
        dist.broadcast_object_list(objects, src=dist.get_global_rank(pg, rank), group=pg)
    return objects[0]  # type: ignore[return-value]


def run_on_leader(pg: dist.ProcessGroup, rank: int) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator: the function runs on group rank ``rank``; every rank gets the result."""

    def decorator(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            return invoke_on_rank_and_broadcast_result(pg, rank, func, *args, **kwargs)

        return wrapper

    return decorator
