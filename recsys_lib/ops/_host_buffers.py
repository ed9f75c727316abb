"""Large host buffers without a page fault per 4 KB page.

A fresh CPU tensor of more than a few MB comes from ``mmap``, and the first write to each 4 KB page of it costs a
page fault in the kernel: about 2 us on this project's virtual machines, so filling a fresh 40 MB buffer takes
23 ms where 5 ms do with 2 MB pages. Two remedies for the largest buffers of a step, both eager CPU only:

* ``host_empty``: ``torch.empty`` whose 2 MB-aligned interior is advised ``MADV_HUGEPAGE`` before anything
  writes it (Linux with transparent huge pages in ``madvise`` or ``always`` mode; elsewhere a plain
  ``torch.empty``). For buffers the library allocates and fills itself: all-to-all receive and send buffers,
  the pooled output's concatenation and column permutation.
* ``RecycledBuffers``: an owner's outputs handed out again once nothing views them (a quantized lookup's
  ``(B, sum D)`` at batch 4096 is 54 MB in FP32). A buffer is reused only when nothing but the pool references its
  storage (every view the caller was given, and everything derived from one, is gone), so a result the caller
  still holds is never written again. The pool is private to its owner, never copied or pickled (a copy starts
  empty).
"""

import ctypes
import sys
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch


HUGE_PAGE = 1 << 21
# buffers from this size on are advised: smaller ones hold at most one aligned 2 MB page
ADVISE_MIN_BYTES = 4 * HUGE_PAGE
_MADV_HUGEPAGE = 14


def _load_madvise() -> Optional[Callable[[int, int, int], int]]:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _load_madvise()  # a constant: libc's madvise, or None where there is none


def advise_huge_pages(t: torch.Tensor) -> None:
    """Ask for 2 MB pages under ``t``'s memory (its aligned interior); a hint: nothing happens where it is not
    supported, and memory already written keeps its pages."""
    nbytes = t.numel() * t.element_size()
    if _MADVISE is None or t.device.type != "cpu" or nbytes < ADVISE_MIN_BYTES:
        return
    ptr = t.data_ptr()
    start = (ptr + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1)
    end = (ptr + nbytes) & ~(HUGE_PAGE - 1)
    if end > start:
        _MADVISE(start, end - start, _MADV_HUGEPAGE)


def host_empty(shape: Sequence[int], dtype: torch.dtype, device: Optional[torch.device] = None) -> torch.Tensor:
    """``torch.empty(shape, dtype=dtype, device=device)``; a large CPU buffer is advised 2 MB pages first."""
    out = torch.empty(tuple(shape), dtype=dtype, device=device)
    advise_huge_pages(out)
    return out


# torch's count of the references to a storage (a private binding): without it no buffer is ever reused
_STORAGE_USE_COUNT = getattr(torch._C, "_storage_Use_Count", None)


def _storage_users(t: torch.Tensor) -> int:
    return _STORAGE_USE_COUNT(t.untyped_storage()._cdata)  # type: ignore[misc]


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
        if _STORAGE_USE_COUNT is None:
            return host_empty(shape, dtype)
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
            buffer = host_empty(shape, dtype)
            self._buffers = self._buffers[1 - self._slots:] if self._slots > 1 else []
            self._buffers.append((buffer, _storage_users(buffer)))
            return buffer.view(buffer.shape)

    def __deepcopy__(self, memo: Dict[int, object]) -> "RecycledBuffers":
        return RecycledBuffers(self._slots)

    def __getstate__(self) -> Dict[str, object]:
        return {"_slots": self._slots}

    def __setstate__(self, state: Dict[str, object]) -> None:
        self.__init__(int(state["_slots"]))  # type: ignore[misc, arg-type]
