"""Run a function on one rank and share its result (used by ``ShardingPlanner.collective_plan``).

Also: ``create_on_rank_and_share_result`` (one rank builds CPU tensors, the others map the same shared memory) and
the collective-validation switch (``init_collective_validation`` / ``validate_collectives_enabled``, kept in
``global_settings``).
"""

import functools
import logging
import os
from typing import Any, Callable, List, Optional, Tuple, TypeVar

import torch
import torch.distributed as dist

from recsys_lib.distributed.global_settings import process_settings

logger = logging.getLogger(__name__)

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


# (manager handle, storage handle, storage bytes, shape, stride, storage offset, dtype) of one shared tensor.
_ShmMeta = Tuple[bytes, bytes, int, torch.Size, Tuple[int, ...], int, torch.dtype]


def _share(t: torch.Tensor) -> _ShmMeta:
    if t.device.type != "cpu":
        raise ValueError(f"create_on_rank_and_share_result shares CPU tensors only, got a tensor on {t.device}")
    manager, handle, size = t.untyped_storage()._share_filename_cpu_()
    return (bytes(manager), bytes(handle), int(size), t.shape, tuple(t.stride()), int(t.storage_offset()), t.dtype)


def _attach(meta: _ShmMeta) -> torch.Tensor:
    manager, handle, size, shape, stride, offset, dtype = meta
    storage = torch.UntypedStorage._new_shared_filename_cpu(manager, handle, size)
    return torch.empty((0,), dtype=dtype).set_(storage, offset, shape, stride)


def create_on_rank_and_share_result(
    pg: dist.ProcessGroup,
    rank: int,
    creator: Callable[..., T],
    extractor: Callable[[T], List[Optional[torch.Tensor]]],
    constructor: Callable[[List[Optional[torch.Tensor]]], T],
    *args: Any,
    **kwargs: Any,
) -> T:
    """``creator`` runs on group rank ``rank``; the other ranks get a result mapping the same memory (no copy).

    The creator's CPU tensors (``extractor(result)``) move into POSIX shared memory; their handles are broadcast
    and every other rank rebuilds the result with ``constructor(tensors)`` (``None`` entries stay ``None``).
    Shared memory is host-local, so ``pg`` must hold ranks of one host (e.g. ``comm.intra_and_cross_node_pg``).

    Example::

        table = create_on_rank_and_share_result(
            intra_pg, 0, creator=lambda: torch.randn(1000, 64), extractor=lambda t: [t], constructor=lambda ts: ts[0]
        )
    """
    result: Optional[T] = None
    payload: List[Optional[List[Optional[_ShmMeta]]]] = [None]
    if dist.get_rank(pg) == rank:
        result = creator(*args, **kwargs)
        payload = [[None if t is None else _share(t) for t in extractor(result)]]
    if dist.get_world_size(pg) > 1:
        dist.broadcast_object_list(payload, src=dist.get_global_rank(pg, rank), group=pg)
    if result is not None:
        return result
    metas = payload[0] or []
    return constructor([None if m is None else _attach(m) for m in metas])


def init_collective_validation(pg: dist.ProcessGroup) -> None:
    """Rank 0 of ``pg`` decides whether collectives are validated (``TORCHREC_VALIDATE_COLLECTIVES=1``) and
    broadcasts it; every rank stores the decision. Only the first call in a process has an effect."""
    settings = process_settings()
    if settings.collective_validation_initialized:
        return
    settings.collective_validation = bool(
        invoke_on_rank_and_broadcast_result(pg, 0, lambda: os.environ.get("TORCHREC_VALIDATE_COLLECTIVES", "") == "1")
    )
    settings.collective_validation_initialized = True
    logger.info("Collective validation initialized: %s", settings.collective_validation)


def validate_collectives_enabled() -> bool:
    """Whether ``init_collective_validation`` switched collective validation on (default False)."""
    return process_settings().collective_validation
