"""``UInt4Tensor`` / ``UInt2Tensor``: uint8 storage that reports its shape in 4-bit / 2-bit elements.

Quantized INT4 / INT2 embedding tables keep their rows as bytes; their state-dict entries wrap those bytes so the
reported last dimension counts packed elements (2 per byte for INT4, 4 per byte for INT2), as TorchRec does::

    elem (bytes)   (R, C) uint8
    UInt4Tensor    shape (R, 2*C)      dtype uint8
    UInt2Tensor    shape (R, 4*C)      dtype uint8

Only the operations a state dict needs are supported (detach, clone, ``copy_``, to/_to_copy, slicing along rows,
equality, ``view(torch.uint8)`` to get the bytes back); anything else raises ``NotImplementedError`` naming it.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple

import torch


def down_size(N: int, size: torch.Size) -> Tuple[int, int]:
    """The byte shape behind an element shape: ``(R, C*N)`` → ``(R, C)``."""
    assert size[-1] % N == 0, "last dim " + str(size[-1]) + " is not a multiple of " + str(N)
    return (size[0], size[1] // N)


def up_size(N: int, size: torch.Size) -> Tuple[int, int]:
    """The element shape of a byte shape: ``(R, C)`` → ``(R, C*N)``."""
    return (size[0], size[1] * N)


def _unwrap(x: Any) -> Any:
    # Duck-typed: packed tensors of other libraries (TorchRec's UInt4Tensor in a loaded state dict) also hold
    # their bytes as ``elem``.
    elem = getattr(x, "elem", None) if isinstance(x, torch.Tensor) else None
    return elem if isinstance(elem, torch.Tensor) else x


class UIntXTensor(torch.Tensor):
    """A uint8 tensor holding ``N`` packed elements per byte (``elem``: the bytes, ``(R, C)``)."""

    N: int = 1

    @staticmethod
    def __new__(cls, N: int, elem: torch.Tensor) -> "UIntXTensor":  # type: ignore[override]
        if elem.dtype != torch.uint8:
            raise TypeError(cls.__name__ + " wraps uint8 bytes, got " + str(elem.dtype))
        if elem.dim() != 2:
            raise ValueError(cls.__name__ + " wraps a 2-D (rows, bytes) tensor, got shape " + str(tuple(elem.shape)))
        return torch.Tensor._make_wrapper_subclass(  # type: ignore[attr-defined]
            cls, up_size(N, elem.shape), dtype=torch.uint8, device=elem.device, requires_grad=False
        )

    def __init__(self, N: int, elem: torch.Tensor) -> None:
        self.N = N
        self.elem = elem

    def tolist(self) -> List[Any]:
        return self.elem.tolist()

    def __repr__(self) -> str:  # type: ignore[override]
        return type(self).__name__ + "(shape=" + str(self.shape) + ", elem=" + repr(self.elem) + ")"

    def _rewrap(self, elem: torch.Tensor) -> "UIntXTensor":
        return type(self)(elem)  # type: ignore[call-arg]

    @classmethod
    def __torch_dispatch__(
        cls, func: Callable[..., Any], types: Any, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None
    ) -> Any:
        kwargs = kwargs or {}
        this = args[0]
        name = func.__name__ if hasattr(func, "__name__") else str(func)
        base = name.split(".")[0]
        if base in ("detach", "clone", "_to_copy", "alias"):
            return this._rewrap(func(this.elem, *args[1:], **kwargs))
        if base == "copy_":
            this.elem.copy_(_unwrap(args[1]), **kwargs)
            return this
        if base == "slice":
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
            if dim in (1, -1):
                raise NotImplementedError(cls.__name__ + ": slicing packed columns is not supported")
            return this._rewrap(func(this.elem, *args[1:], **kwargs))
        if base == "select" and (args[1] if len(args) > 1 else 0) == 0:
            raise NotImplementedError(cls.__name__ + ": selecting one row drops the (rows, bytes) layout")
        if base == "view" and len(args) > 1 and args[1] == torch.uint8:
            return this.elem
        if base in ("equal",):
            return func(_unwrap(args[0]), _unwrap(args[1]))
        if base in ("eq", "ne"):
            return func(_unwrap(args[0]), _unwrap(args[1]))
        raise NotImplementedError(cls.__name__ + " does not support " + name)


class UInt4Tensor(UIntXTensor):
    """Bytes holding two 4-bit elements each (low nibble first). ``shape`` = ``(R, 2 * bytes)``."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> "UInt4Tensor":  # type: ignore[override]
        return UIntXTensor.__new__(cls, 2, elem)  # type: ignore[return-value]

    def __init__(self, elem: torch.Tensor) -> None:
        super().__init__(2, elem)


class UInt2Tensor(UIntXTensor):
    """Bytes holding four 2-bit elements each (lowest bits first). ``shape`` = ``(R, 4 * bytes)``."""

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> "UInt2Tensor":  # type: ignore[override]
        return UIntXTensor.__new__(cls, 4, elem)  # type: ignore[return-value]

    def __init__(self, elem: torch.Tensor) -> None:
        super().__init__(4, elem)
