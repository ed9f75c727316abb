"""PT2 tracing helpers: KJTs whose sizes the tracer treats as dynamic, fake classes for FBGEMM script objects.

Example (export a quantized model; FBGEMM's inference TBE holds an ``AtomicCounter`` and a ``TensorQueue``)::

    register_fake_classes()
    ep = torch.export.export(model, (dense, kjt_for_pt2_tracing(kjt)), dynamic_shapes=..., strict=False)
"""

import functools
from typing import Any, Callable, List, Tuple

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_FAKE_CLASSES = ("fbgemm::AtomicCounter", "fbgemm::TensorQueue")


def kjt_for_pt2_tracing(kjt: KeyedJaggedTensor, convert_to_vb: bool = False) -> KeyedJaggedTensor:
    """A KJT holding only keys, values, lengths (and weights) — no host-side caches that would specialise a trace.

    With ``convert_to_vb``, the KJT is made variable-batch with every key at the full stride (one rank), which
    keeps the batch size a traced value per key.
    """
    if convert_to_vb:
        stride = kjt.stride()
        return KeyedJaggedTensor(
            keys=kjt.keys(), values=kjt.values(), weights=kjt.weights_or_none(), lengths=kjt.lengths(),
            stride_per_key_per_rank=[[stride] for _ in kjt.keys()],
            inverse_indices=(kjt.keys(), torch.arange(stride).expand(len(kjt.keys()), stride).contiguous()),
        )
    return KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values(), weights=kjt.weights_or_none(),
                             lengths=kjt.lengths())


def default_pipeline_input_transformer(inp: Any) -> Any:
    """Replace every KJT attribute of a batch object by :func:`kjt_for_pt2_tracing` of it (in place)."""
    for attr in list(vars(inp)):
        value = getattr(inp, attr)
        if isinstance(value, KeyedJaggedTensor):
            setattr(inp, attr, kjt_for_pt2_tracing(value))
    return inp


class _FakeAtomicCounter:
    def __init__(self, counter_: int) -> None:
        self.counter_ = counter_

    @classmethod
    def __obj_unflatten__(cls, flat: Tuple[Tuple[str, Any], ...]) -> "_FakeAtomicCounter":
        return cls(**dict(flat))

    def increment(self) -> int:
        self.counter_ += 1
        return self.counter_

    def decrement(self) -> int:
        self.counter_ -= 1
        return self.counter_

    def reset(self) -> None:
        self.counter_ = 0

    def get(self) -> int:
        return self.counter_

    def set(self, val: int) -> None:
        self.counter_ = val


class _FakeTensorQueue:
    def __init__(self, init_tensor: torch.Tensor, queue: List[torch.Tensor]) -> None:
        self.init_tensor = init_tensor
        self.queue = list(queue)

    @classmethod
    def __obj_unflatten__(cls, flat: Tuple[Tuple[str, Any], ...]) -> "_FakeTensorQueue":
        return cls(**dict(flat))

    def push(self, x: torch.Tensor) -> None:
        self.queue.append(x)

    def pop(self) -> torch.Tensor:
        return self.queue.pop(0) if self.queue else self.init_tensor

    def top(self) -> torch.Tensor:
        return self.queue[0] if self.queue else self.init_tensor

    def size(self) -> int:
        return len(self.queue)


def register_fake_classes() -> None:
    """Register fake versions of FBGEMM's ``AtomicCounter`` / ``TensorQueue`` (idempotent), so modules holding
    them (the inference TBE) can be exported."""
    import fbgemm_gpu  # noqa: F401  (registers the real classes)
    from torch._library.fake_class_registry import global_fake_class_registry, register_fake_class

    for name, fake in zip(_FAKE_CLASSES, (_FakeAtomicCounter, _FakeTensorQueue)):
        if not global_fake_class_registry.has_impl(name):
            register_fake_class(name)(fake)


def deregister_fake_classes() -> None:
    """Undo :func:`register_fake_classes`."""
    from torch._library.fake_class_registry import global_fake_class_registry

    for name in _FAKE_CLASSES:
        if global_fake_class_registry.has_impl(name):
            global_fake_class_registry.deregister(name)


def pt2_compile_callable(f: Callable) -> Callable:
    """Decorate a method ``f(self, ...)``: when ``self.enable_pt2_compile`` is true, calls go through
    ``torch.compile(f)`` (compiled once per object, cached as ``self._<name>_pt2_compiled``); otherwise ``f`` runs
    eagerly."""

    @functools.wraps(f)
    def inner(ref: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(ref, "enable_pt2_compile", False):
            attr = "_" + f.__name__ + "_pt2_compiled"
            if not hasattr(ref, attr):
                setattr(ref, attr, torch.compile(f))
            return getattr(ref, attr)(ref, *args, **kwargs)
        return f(ref, *args, **kwargs)

    return inner
