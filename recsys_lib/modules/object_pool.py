"""``ObjectPool``: the interface of the id-indexed pools (``torchrec.modules.object_pool``)."""

import abc
from typing import Generic, TypeVar

import torch

T = TypeVar("T")


class ObjectPool(abc.ABC, torch.nn.Module, Generic[T]):
    """A pool of ``pool_size`` slots indexed by id: ``update(ids, values)`` writes, ``lookup(ids)`` reads."""

    @abc.abstractmethod
    def lookup(self, ids: torch.Tensor) -> T:
        """Values of ``ids`` ``(N,)``."""

    @abc.abstractmethod
    def update(self, ids: torch.Tensor, values: T) -> None:
        """Write ``values`` at ``ids`` ``(N,)``; on repeated ids the last one wins."""

    @property
    @abc.abstractmethod
    def pool_size(self) -> int:
        """Number of slots."""


def check_pool_ids(owner: str, ids: torch.Tensor, device: torch.device, pool_size: int) -> None:
    """Ids must be a 1-D int32/int64 tensor on the pool's device, each in ``[0, pool_size)``."""
    if ids.dtype not in (torch.int32, torch.int64):
        raise TypeError(f"{owner}: ids must be int32 or int64, got {ids.dtype}")
    if ids.device != device:
        raise ValueError(f"{owner}: ids are on {ids.device}, the pool on {device}")
    if ids.dim() != 1:
        raise ValueError(f"{owner}: ids must be 1-D, got shape {tuple(ids.shape)}")
    # negative ids would index from the end (TorchRec wraps them silently); >= pool_size would crash
    if ids.numel() > 0 and device.type != "meta" and (bool((ids < 0).any()) or bool((ids >= pool_size).any())):
        bad = ids[(ids < 0) | (ids >= pool_size)][:5].tolist()
        raise ValueError(f"{owner}: ids must lie in [0, pool_size={pool_size}), got e.g. {bad}")
