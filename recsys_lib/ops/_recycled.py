"""Output buffers handed out again once every tensor viewing them is gone.

A fresh CPU tensor of more than a few MB comes from ``mmap``: the first write to each 4 KB page then costs a page
fault in the kernel. For the largest outputs of a forward (a quantized lookup's ``(B, sum D)`` at batch 4096 is
54 MB in FP32: 13k pages) those faults cost as much as the lookup's own reads on a virtual machine. A module that
writes such an output itself (rather than receiving it from a kernel) can take it from a ``RecycledBuffers``: a
buffer is reused only when nothing but the pool references its storage (every view the caller was given, and
everything derived from one, is gone), so a result the caller still holds is never written again.

Eager CPU use only; the pool is private to its owner, never copied or pickled (a copy starts empty).
"""

import threading
from typing import Dict, List, Tuple

import torch


def _storage_users(t: torch.Tensor) -> int:
    return torch._C._storage_Use_Count(t.untyped_storage()._cdata)


class RecycledBuffers:
    """Up to ``slots`` buffers per owner; ``empty(shape, dtype)`` returns a view of a free one of that exact shape,
    dtype and inference-mode flag, else of a new one (replacing the oldest kept buffer).

    Args:
        slots: buffers kept; 2 lets a caller keep one result while the next is computed.
    """

    def __init__(self, slots: int = 2) -> None:
        if slots < 1:
            raise ValueError(f"RecycledBuffers: slots must be >= 1, got {slots}")
        self._slots = slots
        self._buffers: List[Tuple[torch.Tensor, int]] = []  # (buffer, storage users when only the pool holds it)
        self._lock = threading.Lock()

    def empty(self, shape: Tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised CPU tensor of ``shape`` and ``dtype`` (a view: while it or anything derived from it
        lives, its storage is not handed out again)."""
        inference = torch.is_inference_mode_enabled()
        with self._lock:
            for buffer, free_users in self._buffers:
                if (
                    buffer.dtype == dtype
                    and tuple(buffer.shape) == tuple(shape)
                    and buffer.is_inference() == inference
                    and _storage_users(buffer) == free_users
                ):
                    return buffer.view(buffer.shape)
            buffer = torch.empty(shape, dtype=dtype)
            self._buffers = self._buffers[1 - self._slots:] if self._slots > 1 else []
            self._buffers.append((buffer, _storage_users(buffer)))
            return buffer.view(buffer.shape)

    def clear(self) -> None:
        """Drop every kept buffer (their memory is freed once the caller's views are gone)."""
        with self._lock:
            self._buffers = []

    def __deepcopy__(self, memo: Dict[int, object]) -> "RecycledBuffers":
        return RecycledBuffers(self._slots)

    def __getstate__(self) -> Dict[str, object]:
        return {"_slots": self._slots}

    def __setstate__(self, state: Dict[str, object]) -> None:
        self.__init__(int(state["_slots"]))  # type: ignore[misc, arg-type]
