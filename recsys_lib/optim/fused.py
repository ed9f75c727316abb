"""Optimizers fused into the backward pass of a kernel (FBGEMM TBE), and modules that own one.

A fused optimizer updates its parameters while gradients are produced, so ``step()`` and ``zero_grad()``
are usually no-ops; it still exposes keyed state (e.g. ``{"t0.weight": {"t0.momentum1": ...}}``) so it
checkpoints and combines like any :class:`~recsys_lib.optim.keyed.KeyedOptimizer`.
"""

import abc
from typing import Any, Optional

from recsys_lib.optim.keyed import KeyedOptimizer


class FusedOptimizer(KeyedOptimizer, abc.ABC):
    """A :class:`KeyedOptimizer` whose update runs inside backward; subclasses define ``step``/``zero_grad``."""

    @abc.abstractmethod
    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        ...

    @abc.abstractmethod
    def zero_grad(self, set_to_none: bool = False) -> None:
        ...

    def __repr__(self) -> str:
        return KeyedOptimizer.__repr__(self)


class EmptyFusedOptimizer(FusedOptimizer):
    """A fused optimizer with no parameters; ``step``/``zero_grad`` do nothing.

    Example::

        opt = EmptyFusedOptimizer()
        opt.state_dict()  # {"state": {}}
    """

    def __init__(self) -> None:
        super().__init__({}, {}, [])

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        return None

    def zero_grad(self, set_to_none: bool = False) -> None:
        return None


class FusedOptimizerModule(abc.ABC):
    """Implemented by modules (sharded embedding collections, ``DistributedModelParallel``) that own a
    fused optimizer; training code collects ``module.fused_optimizer`` into a ``CombinedOptimizer``."""

    @property
    @abc.abstractmethod
    def fused_optimizer(self) -> KeyedOptimizer:
        ...
