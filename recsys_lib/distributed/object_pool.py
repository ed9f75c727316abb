"""``ShardedObjectPool``: the base of sharded pools (``torchrec.distributed.object_pool``).

A sharded pool stores its slots spread over ranks and answers ``update`` / ``lookup`` with collectives; every
rank calls both together (each with its own ids). Lookup is the three-stage protocol::

    input_dist   ids to the ranks owning their slots
    compute      local lookup of the ids received
    output_dist  values back to the ranks that asked, in their ids' order

Update: ids and values to the owners, then a local write (the last occurrence of an id wins, in the order
rank 0's ids, rank 1's, ...).
"""

import abc
from typing import Any, Generic, Type, TypeVar

import torch

from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.modules.object_pool import ObjectPool

Out = TypeVar("Out")
DistOut = TypeVar("DistOut")
ShrdCtx = TypeVar("ShrdCtx")


class ShardedObjectPool(Generic[Out, DistOut, ShrdCtx], ObjectPool[Out], ShardedModule[torch.Tensor, DistOut, Out, ShrdCtx]):
    """Distributed id → value store (see the module docstring); subclasses provide the per-stage hooks."""

    def __init__(self) -> None:
        super().__init__()

    @abc.abstractmethod
    def _update_preproc(self, values: Out) -> Out:
        """Check and normalise the values of an update."""

    @abc.abstractmethod
    def _update_ids_dist(self, ctx: ShrdCtx, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        """Ids of an update to their owners (local slot ids)."""

    @abc.abstractmethod
    def _update_local(self, ctx: ShrdCtx, ids: torch.Tensor, values: DistOut) -> None:
        """Write received values at received local ids."""

    @abc.abstractmethod
    def _update_values_dist(self, ctx: ShrdCtx, values: Out) -> Awaitable[DistOut]:
        """Values of an update to their owners."""

    @abc.abstractmethod
    def _lookup_ids_dist(self, ctx: ShrdCtx, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        """Ids of a lookup to their owners."""

    @abc.abstractmethod
    def _lookup_local(self, ctx: ShrdCtx, ids: torch.Tensor) -> DistOut:
        """Local lookup of received local ids."""

    @abc.abstractmethod
    def _lookup_values_dist(self, ctx: ShrdCtx, values: DistOut) -> LazyAwaitable[Out]:
        """Looked-up values back to the askers, in their ids' order."""

    def forward(self, ids: torch.Tensor) -> LazyAwaitable[Out]:  # type: ignore[override]
        """Distributed lookup of ``ids`` ``(N,)`` (int32/int64)."""
        _check_int_ids(ids)
        ctx = self.create_context()
        received = self.input_dist(ctx, ids).wait().wait()
        return self.output_dist(ctx, self.compute(ctx, received))

    def lookup(self, ids: torch.Tensor) -> LazyAwaitable[Out]:  # type: ignore[override]
        return self.forward(ids)

    def update(self, ids: torch.Tensor, values: Out) -> None:
        """Distributed write of ``values`` (first dim ``N``) at ``ids`` ``(N,)``."""
        _check_int_ids(ids)
        values = self._update_preproc(values=values)
        ctx = self.create_context()
        dist_ids = self._update_ids_dist(ctx=ctx, ids=ids).wait().wait()
        dist_values = self._update_values_dist(ctx=ctx, values=values).wait()
        self._update_local(ctx=ctx, ids=dist_ids, values=dist_values)

    def input_dist(self, ctx: ShrdCtx, *input: Any, **kwargs: Any) -> Awaitable[Awaitable[torch.Tensor]]:
        return self._lookup_ids_dist(ctx, *input, **kwargs)

    def compute(self, ctx: ShrdCtx, dist_input: torch.Tensor) -> DistOut:
        return self._lookup_local(ctx, dist_input)

    def output_dist(self, ctx: ShrdCtx, output: DistOut) -> LazyAwaitable[Out]:
        return self._lookup_values_dist(ctx, output)

    @property
    def unsharded_module_type(self) -> Type[ObjectPool[Out]]:  # type: ignore[override]
        return ObjectPool


def _check_int_ids(ids: torch.Tensor) -> None:
    if ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"sharded pool: ids must be int32 or int64, got {ids.dtype}")
    if ids.dim() != 1:
        raise ValueError(f"sharded pool: ids must be 1-D, got shape {tuple(ids.shape)}")
