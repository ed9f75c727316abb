"""Turning results of either library into comparable plain values, and comparing them."""

import math
from typing import Any, Callable, List, Optional, Tuple

import torch

TOL = 1e-5  # float outputs: the same math in both libraries, up to kernel order


class Raised:
    """A call that raised: we compare *that* it raised (type names differ between the libraries by design)."""

    def __init__(self, exc: BaseException) -> None:
        self.type = type(exc).__name__
        self.message = str(exc).splitlines()[0][:160] if str(exc) else ""

    def __repr__(self) -> str:
        return f"Raised({self.type}: {self.message})"


def _tensor(t: torch.Tensor) -> Tuple[str, str, Tuple[int, ...], Any]:
    if t.device.type == "meta":
        return ("tensor", str(t.dtype), tuple(t.shape), "meta")
    return ("tensor", str(t.dtype), tuple(t.shape), t.detach().cpu().double().flatten().tolist()
            if t.is_floating_point() else t.detach().cpu().flatten().tolist())


def normalize(x: Any) -> Any:
    """Plain nested values; jagged types by their parts, library prefixes removed from strings."""
    name = type(x).__name__
    if isinstance(x, torch.Tensor):
        return _tensor(x)
    if name == "KeyedJaggedTensor":
        return ("KJT", x.keys(), normalize(x.lengths()), normalize(x.values()[: sum(x.length_per_key())]),
                normalize(x.weights_or_none() if x.weights_or_none() is None
                          else x.weights()[: sum(x.length_per_key())]),
                x.stride(), x.stride_per_key())
    if name == "JaggedTensor":
        return ("JT", [normalize(t) for t in x.to_dense()], normalize(x.lengths()), normalize(x.to_dense_weights()))
    if name == "KeyedTensor":
        return ("KT", x.keys(), x.length_per_key(), x.key_dim(), normalize(x.values()))
    if isinstance(x, dict):
        return {str(k): normalize(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [normalize(v) for v in x]
    if isinstance(x, str):
        return x.replace("torchrec", "recsys_lib")
    if isinstance(x, torch.device):
        return str(x)
    if isinstance(x, (int, float, bool)) or x is None:
        return x
    if hasattr(x, "item") and hasattr(x, "dtype") and getattr(x, "shape", None) == ():  # numpy scalars
        return x.item()
    if isinstance(x, Raised):
        return x
    return ("object", name)


def same(a: Any, b: Any, path: str = "") -> Optional[str]:
    """``None`` when equal (floats within TOL), else where they differ."""
    if isinstance(a, Raised) or isinstance(b, Raised):
        if isinstance(a, Raised) and isinstance(b, Raised):
            return None
        return f"{path}: torchrec {a!r} vs recsys_lib {b!r}"
    if isinstance(a, tuple) and a and a[0] == "tensor" and isinstance(b, tuple) and b and b[0] == "tensor":
        if a[1:3] != b[1:3]:
            return f"{path}: tensor dtype/shape {a[1:3]} vs {b[1:3]}"
        if a[3] == "meta" or b[3] == "meta":
            return None if a[3] == b[3] else f"{path}: meta vs data"
        for i, (x, y) in enumerate(zip(a[3], b[3])):
            if isinstance(x, float) and (math.isnan(x) and math.isnan(y)):
                continue
            if abs(x - y) > TOL * max(1.0, abs(x)):
                return f"{path}[{i}]: {x} vs {y}"
        return None
    if type(a) is not type(b) and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))):
        return f"{path}: {a!r:.120} vs {b!r:.120}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            d = same(a[k], b[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{path}: length {len(a)} vs {len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = same(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    if isinstance(a, float):
        return None if abs(a - b) <= TOL * max(1.0, abs(a)) else f"{path}: {a} vs {b}"
    return None if a == b else f"{path}: {a!r:.200} vs {b!r:.200}"


def call(fn: Callable[[], Any]) -> Any:
    try:
        return normalize(fn())
    except Exception as e:  # noqa: BLE001 - the error itself is the result being compared
        return Raised(e)


def results(case: Callable[[Any], List[Tuple[str, Callable[[], Any]]]], lib: Any) -> List[Tuple[str, Any]]:
    """Run every named call a case builds against ``lib``; each call's result or error."""
    torch.manual_seed(0)
    try:
        calls = case(lib)
    except Exception as e:  # noqa: BLE001
        return [("<setup>", Raised(e))]
    return [(name, call(fn)) for name, fn in calls]
