"""``JaggedTensorMeta``, the metaclass of the jagged types (public at ``recsys_lib.sparse.jagged_tensor``)."""

import abc
from typing import Any

from torch.fx import _symbolic_trace
from torch.fx._symbolic_trace import ProxyableClassMeta

from recsys_lib._public import public_at


@public_at("recsys_lib.sparse.jagged_tensor")
class JaggedTensorMeta(abc.ABCMeta, ProxyableClassMeta):
    """Metaclass of the jagged types: ``ABCMeta`` (for the ``Pipelineable`` contract) combined with fx's
    ``ProxyableClassMeta``, so ``KeyedJaggedTensor(keys, proxy_values, ...)`` inside a traced ``forward`` records a
    constructor call instead of running ``__init__`` on proxies. Outside tracing it goes straight to
    ``type.__call__`` (cheaper, and it skips fx's "is_fx_tracing" log line)."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not _symbolic_trace._is_fx_tracing_flag:
            return type.__call__(cls, *args, **kwargs)
        return ProxyableClassMeta.__call__(cls, *args, **kwargs)
