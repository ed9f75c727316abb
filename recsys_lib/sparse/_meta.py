"""Metaclass shared by the jagged types: abstract-base aware and fx-proxyable.

``torch.fx``'s ``ProxyableClassMeta`` makes ``KeyedJaggedTensor(keys, proxy_values, ...)`` inside a traced
``forward`` record a constructor call instead of running ``__init__`` on proxies. Outside tracing we go straight
to ``type.__call__`` (cheaper, and it skips fx's "is_fx_tracing" log line).
"""

import abc
from typing import Any

from torch.fx import _symbolic_trace
from torch.fx._symbolic_trace import ProxyableClassMeta

from recsys_lib._public import public_at


@public_at("recsys_lib.sparse.jagged_tensor")
class JaggedTensorMeta(abc.ABCMeta, ProxyableClassMeta):
    """``ABCMeta`` (for the ``Pipelineable`` contract) combined with fx's ``ProxyableClassMeta``."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if not _symbolic_trace._is_fx_tracing_flag:
            return type.__call__(cls, *args, **kwargs)
        return ProxyableClassMeta.__call__(cls, *args, **kwargs)
