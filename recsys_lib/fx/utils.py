"""Small fx helpers: graph markers, tracing-safe asserts, a fake source range for TorchScript graphs."""

import inspect
from typing import Any, Callable

import torch
from torch.fx import Node

from recsys_lib.fx._marker import fx_marker  # noqa: F401  (public here, as in TorchRec)
from recsys_lib.fx.tracer import is_fx_tracing


def fake_range() -> torch._C._jit_tree_views.SourceRange:
    """An empty TorchScript source range (for graph nodes built by hand)."""
    return torch._C._jit_tree_views.SourceRangeFactory("", None, 0, 0).make_raw_range(0, 1)


def is_marker_node(node: Node, marker_name: str) -> bool:
    return (
        node.op == "call_function"
        and node.target is fx_marker
        and len(node.args) > 0
        and node.args[0] == marker_name
    )


def assert_fx_safe(condition: bool, message: str) -> None:
    """``assert condition, message`` outside fx tracing (where ``condition`` may be a proxy)."""
    if not is_fx_tracing():
        assert condition, message


def dmp_fx_trace_forward(dmp: torch.nn.Module, tracer: torch.fx.Tracer) -> Callable[..., Any]:
    """A function with the wrapped module's ``forward`` signature that calls the wrapper (DMP / DDP) itself.

    fx traces functions by their signature; a ``DistributedModelParallel`` forwards ``*args, **kwargs``, so tracing
    it directly would lose the argument names. ``tracer`` is accepted for TorchRec's signature.
    """
    inner = dmp
    for attr in ("_dmp_wrapped_module", "module"):
        while hasattr(inner, attr) and isinstance(getattr(inner, attr), torch.nn.Module):
            inner = getattr(inner, attr)
    sig = inspect.signature(inner.forward)

    def forward(*args: Any, **kwargs: Any) -> Any:
        return dmp(*args, **kwargs)

    forward.__signature__ = sig  # type: ignore[attr-defined]
    return forward
