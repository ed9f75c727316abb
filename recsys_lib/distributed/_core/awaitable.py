"""Awaitables: results of asynchronous steps (collectives) that the caller waits on when it needs them.

``Awaitable.wait()`` runs ``_wait_impl()`` once and then the registered callbacks in order, each
transforming the result (the column-wise output dist, for example, registers a permutation).

``LazyAwaitable`` is what a sharded module's ``forward`` returns: using it as a tensor (any
``torch.*`` function, arithmetic), reading an attribute, or indexing it waits implicitly, so user code
written for an unsharded module keeps working::

    out = sharded_ebc(kjt)        # LazyAwaitable[KeyedTensor], collectives in flight
    out.values().sum()            # attribute access waits, then forwards to the KeyedTensor
    torch.cat([out["f1"]], 1)     # with LazyGetItemMixin, indexing is itself lazy
"""

import abc
from typing import Any, Callable, Dict, Generic, List, Optional, Tuple, TypeVar

import torch
from torch.utils import _pytree as pytree

from recsys_lib._public import public_at

W = TypeVar("W")
ParentW = TypeVar("ParentW")
KT = TypeVar("KT")


@public_at("recsys_lib.distributed.types")
class Awaitable(abc.ABC, Generic[W]):
    """A result that becomes available after ``wait()``; callbacks post-process it in registration order."""

    def __init__(self) -> None:
        self._callbacks: List[Callable[[W], W]] = []

    @abc.abstractmethod
    def _wait_impl(self) -> W:
        ...

    def wait(self) -> W:
        with torch.profiler.record_function(f"## {type(self).__name__} wait() ##"):
            ret: W = self._wait_impl()
            for callback in self.callbacks:
                ret = callback(ret)
        return ret

    @property
    def callbacks(self) -> List[Callable[[W], W]]:
        return self._callbacks


@public_at("recsys_lib.distributed.types")
class NoWait(Awaitable[W]):
    """An already-available result wrapped as an ``Awaitable`` (e.g. data-parallel input dist)."""

    def __init__(self, obj: W) -> None:
        super().__init__()
        self._obj = obj

    def _wait_impl(self) -> W:
        return self._obj


def _resolve(obj: Any) -> Any:
    """Waits ``obj`` if it is a ``LazyAwaitable`` (memoised: a lazy result is waited at most once)."""
    if isinstance(obj, LazyAwaitable):
        if obj._result is None:
            obj._result = obj.wait()
        return obj._result
    return obj


# Names looked up by Python machinery (copy, pickle, hasattr probes) that must not trigger a wait.
_NO_WAIT_ATTRS = frozenset({"_result", "_callbacks", "__getstate__", "__setstate__", "__deepcopy__", "__copy__"})


@public_at("recsys_lib.distributed.types")
class LazyAwaitable(Awaitable[W], metaclass=abc.ABCMeta):
    """An awaitable that waits implicitly the first time its result is used.

    Triggers: any ``torch`` function or tensor operator receiving it (``__torch_function__``),
    attribute access not defined on the awaitable itself, ``[key]``, and the arithmetic operators.
    The result is memoised, so ``wait()`` runs once however many times the result is used.
    """

    def __init__(self) -> None:
        super().__init__()
        self._result: Optional[W] = None

    @classmethod
    def __torch_function__(
        cls,
        func: Callable[..., Any],
        types: Tuple[type, ...],
        args: Tuple[Any, ...] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        new_args = pytree.tree_map(_resolve, args)
        new_kwargs = pytree.tree_map(_resolve, kwargs or {})
        return func(*new_args, **new_kwargs)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names missing on the awaitable itself.
        if name in _NO_WAIT_ATTRS:
            raise AttributeError(name)
        return getattr(_resolve(self), name)

    def __getitem__(self, key: Any) -> Any:
        return _resolve(self)[key]


def _lazy_binary(name: str) -> Callable[..., Any]:
    def op(self: LazyAwaitable[Any], other: Any) -> Any:
        return getattr(_resolve(self), name)(_resolve(other))

    op.__name__ = name
    return op


def _lazy_unary(name: str) -> Callable[..., Any]:
    def op(self: LazyAwaitable[Any]) -> Any:
        return getattr(_resolve(self), name)()

    op.__name__ = name
    return op


for _name in (
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__rfloordiv__", "__mod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__",
    "__and__", "__or__", "__xor__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__",
):
    setattr(LazyAwaitable, _name, _lazy_binary(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__", "__len__", "__iter__", "__bool__"):
    setattr(LazyAwaitable, _name, _lazy_unary(_name))
del _name
# Defining __eq__ removes the default hash; keep awaitables hashable by identity (they are used as dict keys).
LazyAwaitable.__hash__ = object.__hash__  # type: ignore[assignment]


@public_at("recsys_lib.distributed.types")
class LazyNoWait(LazyAwaitable[W]):
    """An already-available result that still behaves like a ``LazyAwaitable``."""

    def __init__(self, obj: W) -> None:
        super().__init__()
        self._obj = obj

    def _wait_impl(self) -> W:
        return self._obj


@public_at("recsys_lib.distributed.types")
class LazyGetItemMixin(Generic[KT, W]):
    """Makes ``awaitable[key]`` lazy too: it returns a ``GetItemLazyAwaitable`` instead of waiting."""

    def __getitem__(self, key: KT) -> "LazyAwaitable[W]":
        return GetItemLazyAwaitable(self, key)  # type: ignore[arg-type]


@public_at("recsys_lib.distributed.types")
class GetItemLazyAwaitable(LazyAwaitable[W], Generic[W, ParentW, KT]):
    """``parent[key]``, evaluated when first used (``parent`` is waited then)."""

    def __init__(self, parent: LazyAwaitable[ParentW], key: KT) -> None:
        super().__init__()
        self._parent = parent
        self._key = key

    def _wait_impl(self) -> W:
        return _resolve(self._parent)[self._key]


@public_at("recsys_lib.distributed.types")
class GenericMeta(type):
    """Metaclass kept for TorchRec compatibility (``typing``'s old ``GenericMeta``); adds nothing to ``type``."""


@public_at("recsys_lib.distributed.types")
class DeviceToHostTensorAwaitable(LazyAwaitable[torch.Tensor]):
    """Copies a tensor to the host without blocking; ``wait()`` returns the CPU tensor.

    On CUDA the copy is issued non-blocking on the current stream and ``wait()`` synchronises on an event
    recorded after it; a CPU tensor is returned as is (TorchRec needs CUDA here).

    Args:
        tensor_on_device: any tensor.

    Example::

        host = DeviceToHostTensorAwaitable(loss.detach()).wait()
    """

    def __init__(self, tensor_on_device: torch.Tensor) -> None:
        super().__init__()
        self._event: Optional[torch.cuda.Event] = None
        if tensor_on_device.device.type == "cuda":
            self._host = tensor_on_device.to("cpu", non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor_on_device.to("cpu")

    def _wait_impl(self) -> torch.Tensor:
        if self._event is not None:
            self._event.synchronize()
        return self._host
