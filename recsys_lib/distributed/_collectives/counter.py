"""Counting collectives, for tests: ``with count_collectives(group) as c: ...; c.count("all_to_all")``.

The counter is a ``TorchDispatchMode``: every c10d operator that runs inside the ``with`` block on
this thread (and in autograd backward started from it) is seen at dispatch, with its process group.
Nothing is global: the counter object is the state, and it only exists inside the block. Counts are
by collective kind, so a fallback that emulates one collective with another shows up as what it
really issued (e.g. ``reduce_scatter`` via ``all_to_all`` counts one ``all_to_all``).
"""

from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch.utils._python_dispatch import TorchDispatchMode

# c10d operator name (without overload) → collective kind.
_KIND: Dict[str, str] = {
    "alltoall_": "all_to_all",
    "alltoall_base_": "all_to_all",
    "allreduce_": "all_reduce",
    "allreduce_coalesced_": "all_reduce",
    "allgather_": "all_gather",
    "_allgather_base_": "all_gather",
    "allgather_coalesced_": "all_gather",
    "allgather_into_tensor_coalesced_": "all_gather",
    "reduce_scatter_": "reduce_scatter",
    "_reduce_scatter_base_": "reduce_scatter",
    "reduce_scatter_tensor_coalesced_": "reduce_scatter",
    "broadcast_": "broadcast",
    "barrier": "barrier",
    "gather_": "gather",
    "scatter_": "scatter",
    "reduce_": "reduce",
    "send": "send",
    "recv_": "recv",
    "recv_any_source_": "recv",
}


def _group_name(args: Tuple[Any, ...]) -> Optional[str]:
    for a in args:
        if isinstance(a, torch.ScriptObject):
            try:
                return dist.ProcessGroup.unbox(a).group_name
            except RuntimeError:
                continue  # a ReduceOp or other script object
    return None


class CollectiveCounter(TorchDispatchMode):
    """Records the collectives issued while active, optionally only those on ``group``.

    Attributes:
        calls: ``[(kind, group_name), ...]`` in issue order.
    """

    def __init__(self, group: Optional[dist.ProcessGroup] = None) -> None:
        super().__init__()
        self._group_name: Optional[str] = None if group is None else group.group_name
        self.calls: List[Tuple[str, str]] = []

    def __torch_dispatch__(
        self, func: Callable[..., Any], types: Any, args: Tuple[Any, ...] = (), kwargs: Optional[Dict[str, Any]] = None
    ) -> Any:
        if func.namespace == "c10d":  # type: ignore[attr-defined]
            name = func._opname  # type: ignore[attr-defined]
            group = _group_name(args) or "?"
            if self._group_name is None or group == self._group_name:
                self.calls.append((_KIND.get(name, name), group))
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        """Number of collectives recorded."""
        return len(self.calls)

    def count(self, kind: Optional[str] = None) -> int:
        """Collectives of ``kind`` (``"all_to_all"``, ``"reduce_scatter"``, ...), or all if ``None``."""
        return self.total if kind is None else sum(1 for k, _ in self.calls if k == kind)

    def by_kind(self) -> Dict[str, int]:
        """``{kind: count}``."""
        return dict(Counter(k for k, _ in self.calls))


def count_collectives(group: Optional[dist.ProcessGroup] = None) -> CollectiveCounter:
    """A context manager counting collectives (on ``group`` only, if given). See ``CollectiveCounter``."""
    return CollectiveCounter(group)
