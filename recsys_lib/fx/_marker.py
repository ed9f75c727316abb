"""The graph marker function (own module so that both the tracer and ``fx.utils`` can use it)."""

from typing import Any


def fx_marker(s: str, any_proxy_unused: Any) -> None:
    """No-op that leaves a ``call_function`` node named by ``s`` in a traced graph (see ``is_marker_node``)."""
    pass
