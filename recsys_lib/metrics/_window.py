"""The per-rank window of recent batches behind every ``window_*`` metric value (private helper).

A window keeps the per-batch contributions (one ``(n_tasks,)`` tensor per summed state) of the most
recent batches whose sizes add up to at most ``max_size`` examples; the newest batch is always kept,
and at most ``max_buffer_count`` batches are held. The window value of a state is the running sum of
the kept contributions:

    batches pushed:  b0(4) b1(4) b2(4) b3(4)     max_size = 8
    window holds:                  b2    b3      -> window_state = c(b2) + c(b3)
"""

from collections import deque
from typing import Any, Deque, Dict, List, Tuple

import torch

from recsys_lib._public import public_at

MAX_BUFFER_COUNT = 1000
_STATE = "state"  # key of the single tensor kept by aggregate_state


@public_at("recsys_lib.metrics.rec_metric")
class WindowBuffer:
    """Holds ``(size, {state: contribution})`` for the batches inside the window."""

    def __init__(self, max_size: int, max_buffer_count: int) -> None:
        if max_size <= 0 or max_buffer_count <= 0:
            raise ValueError(f"window max_size and max_buffer_count must be > 0, got {max_size}, {max_buffer_count}")
        self.max_size = max_size
        self.max_buffer_count = max_buffer_count
        self._entries: Deque[Tuple[int, Dict[str, torch.Tensor]]] = deque()
        self._used = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def used_size(self) -> int:
        return self._used

    def push(self, contributions: Dict[str, torch.Tensor], size: int) -> List[Dict[str, torch.Tensor]]:
        """Adds one batch; returns the contributions of the batches that fell out of the window."""
        self._entries.append((size, contributions))
        self._used += size
        evicted: List[Dict[str, torch.Tensor]] = []
        while len(self._entries) > 1 and (
            self._used > self.max_size or len(self._entries) > self.max_buffer_count
        ):
            old_size, old = self._entries.popleft()
            self._used -= old_size
            evicted.append(old)
        return evicted

    def aggregate_state(self, window_state: torch.Tensor, curr_state: torch.Tensor, size: int) -> None:
        """Single-tensor form of ``push``: adds ``curr_state`` to ``window_state`` in place and subtracts
        the batches that fall out.

        A full buffer (``max_buffer_count`` batches) first drops its oldest batch; then batches are dropped,
        oldest first, while the kept sizes add up to more than ``max_size`` (the new one included).

        Args:
            window_state: running window sum, any shape; updated in place.
            curr_state: this batch's contribution, same shape (a copy is kept).
            size: examples in this batch.
        """
        if len(self._entries) == self.max_buffer_count:
            self._drop_oldest(window_state)
        self._entries.append((size, {_STATE: curr_state.clone()}))
        self._used += size
        window_state += curr_state
        while self._used > self.max_size and self._entries:
            self._drop_oldest(window_state)

    def _drop_oldest(self, window_state: torch.Tensor) -> None:
        old_size, old = self._entries.popleft()
        self._used -= old_size
        window_state -= old[_STATE]

    @property
    def buffers(self) -> Deque[torch.Tensor]:
        """The kept contributions, oldest first (for ``push`` entries: the states stacked in order)."""
        return deque(
            c[_STATE] if _STATE in c else torch.stack(list(c.values())) for _, c in self._entries
        )

    def clear(self) -> None:
        self._entries.clear()
        self._used = 0

    def to_state(self) -> Dict[str, Any]:
        """Plain tensors for ``state_dict``: sizes ``(k,)`` and each state stacked to ``(k, n_tasks)``."""
        names = list(self._entries[0][1].keys()) if self._entries else []
        return {
            "sizes": torch.tensor([s for s, _ in self._entries], dtype=torch.long),
            "states": {n: torch.stack([c[n] for _, c in self._entries]) for n in names},
        }

    def load_state(self, state: Dict[str, Any], device: torch.device) -> None:
        self.clear()
        sizes = state["sizes"].tolist()
        stacked = state["states"]
        for i, size in enumerate(sizes):
            self._entries.append((int(size), {n: t[i].to(device) for n, t in stacked.items()}))
            self._used += int(size)
