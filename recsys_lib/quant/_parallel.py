"""A pooled quantized lookup split over threads: contiguous feature ranges of one kernel group, one per thread.

FBGEMM's CPU inference TBE runs its features one after another on the calling thread, and the op releases the
GIL, so disjoint feature ranges can run at once in Python threads. Each range calls the op with the TBE's
per-feature arrays sliced to the range (D offsets rebased to 0) and the range's slice of the bag offsets, which
the op reads as absolute positions into the whole indices (and per-id weights) tensor; weights and indices stay
whole. Each part's output is a column block of the single call's output, computed by the same kernel over the same
rows of the same bags, so the assembled output is bit-identical::

    features  f0 f1 f2 | f3 f4 f5      cut where the summed bytes read (ids x row bytes) halve
    offsets   [0, 3B]  | [3B, 6B]      (slices of the (F*B+1,) offsets, not rebased)
    thread    caller   | worker
    output    (B, D0+D1+D2) | (B, D3+D4+D5)   -> cat(dim=1) -> (B, total_D)

Ids are range-checked per part inside its thread (the check is part of the split work). Only eager CPU calls
take this path: scripting, tracing (jit, fx, PT2) and TBEs with a cache or index remapping use the single call.
"""

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

import torch
from torch import nn

from recsys_lib.fx.tracer import is_fx_tracing
from recsys_lib.modules._feature_layout import all_ids_below, check_ids
from recsys_lib.pt2.checks import is_non_strict_exporting, is_torchdynamo_compiling
from recsys_lib.quant._tbe_call import int_nbit_lookup

# Below this many ids a lookup takes well under a millisecond and a thread's start would cost more than it saves.
MIN_IDS_PER_PART: int = 8192
# Ranges per thread: threads take ranges in turn, so a thread the OS runs less of takes fewer.
RANGES_PER_THREAD: int = 4


def threads_allowed(tbes: List[nn.Module], device: torch.device) -> bool:
    """Whether a lookup may be split over threads: eager CPU calls (no jit / fx / PT2 tracer running) of TBEs
    without a cache or index remapping. Checked before reading the input, which tracers would record."""
    if torch.jit.is_tracing() or is_fx_tracing() or is_torchdynamo_compiling() or is_non_strict_exporting():
        return False
    if device.type != "cpu" or torch.get_num_threads() < 2:
        return False
    for tbe in tbes:
        if tbe.lxu_cache_weights.numel() > 0:  # type: ignore[operator, union-attr]
            return False
        if tbe.index_remapping_hash_table.numel() > 0 or tbe.index_remappings_array.numel() > 0:  # type: ignore
            return False
    return True


def lookup_parts(num_features: int, num_ids: int) -> int:
    """Threads for a lookup of ``num_ids`` ids over ``num_features`` features (1: the single call):
    ``torch.get_num_threads()``, capped by the features and by ``MIN_IDS_PER_PART``."""
    return max(1, min(torch.get_num_threads(), num_features, num_ids // MIN_IDS_PER_PART))


def split_points(costs: List[float], parts: int) -> List[int]:
    """Bounds ``[0, c_1, ..., len(costs)]`` of ``parts`` non-empty contiguous ranges whose summed costs are near
    equal: cut ``k`` is the feature boundary whose prefix sum is nearest ``k/parts`` of the total."""
    n = len(costs)
    parts = max(1, min(parts, n))
    prefix = [0.0]
    for c in costs:
        prefix.append(prefix[-1] + float(c))
    bounds = [0]
    for k in range(1, parts):
        target = prefix[n] * k / parts
        lo = bounds[-1] + 1
        hi = n - (parts - k)  # leave one feature for each later range
        best = lo
        for c in range(lo, hi + 1):
            if abs(prefix[c] - target) < abs(prefix[best] - target):
                best = c
        bounds.append(best)
    bounds.append(n)
    return bounds


def _lookup_range(
    tbe: nn.Module, indices: torch.Tensor, offsets: torch.Tensor, weights: Optional[torch.Tensor],
    a: int, b: int, batch: int,
) -> torch.Tensor:
    """The op over features ``[a, b)``: ``(B, D_a + ... + D_{b-1})``."""
    d = tbe.D_offsets
    return int_nbit_lookup(
        tbe, indices, offsets[a * batch: b * batch + 1], weights, tbe.weights_placements[a:b],  # type: ignore
        tbe.weights_offsets[a:b], tbe.weights_tys[a:b], d[a: b + 1] - d[a], int(d[b]) - int(d[a]),  # type: ignore
    )


def _check_range(
    indices: torch.Tensor, starts: List[int], a: int, b: int, rows: List[int], tables: List[str]
) -> None:
    """``ValueError`` naming the table unless features ``[a, b)``'s ids are below their tables' rows."""
    if all_ids_below(indices[starts[a]: starts[b]], min(rows[a:b])):
        return
    for f in range(a, b):
        check_ids(indices[starts[f]: starts[f + 1]], rows[f], tables[f])


class LookupThreads:
    """A collection's worker threads for split lookups: a thread pool started on first use, kept across calls (a
    waiting thread wakes sooner than a new one starts on a busy machine) and never copied, pickled or scripted
    (copies start their own). Its threads only ever run lookup parts, always under ``OneIntraOpThread``."""

    def __init__(self) -> None:
        self._pool: Optional[ThreadPoolExecutor] = None
        self._pid = os.getpid()

    def pool(self, workers: int) -> ThreadPoolExecutor:
        """A pool of at least ``workers`` threads (a new one in a forked child: the parent's threads are not
        there, and its pool would queue work that nothing runs)."""
        if self._pid != os.getpid():
            self._pool = None
            self._pid = os.getpid()
        if self._pool is None or self._pool._max_workers < workers:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
            self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quant_lookup")
        return self._pool

    def __deepcopy__(self, memo: Dict[int, object]) -> "LookupThreads":
        return LookupThreads()

    def __getstate__(self) -> Dict[str, object]:
        return {}

    def __setstate__(self, state: Dict[str, object]) -> None:
        self._pool = None
        self._pid = os.getpid()


def threaded_lookup(
    tbe: nn.Module,
    indices: torch.Tensor,
    offsets: torch.Tensor,
    weights: Optional[torch.Tensor],
    row_bytes: List[int],
    rows: List[int],
    tables: List[str],
    parts: int,
    out: torch.Tensor,
    threads: LookupThreads,
) -> None:
    """Write ``tbe(indices, offsets, weights)`` into ``out``, computed by ``parts`` threads at once (the caller
    and ``parts - 1`` of ``threads``). The features are cut into up to ``RANGES_PER_THREAD * parts`` ranges that
    the threads take in turn (one busy or descheduled thread does not hold the others up); each range checks its
    ids, looks them up and copies its column block into ``out``.

    Args:
        indices / offsets / weights: the group's kernel inputs, ``(N,)``, ``(F*B+1,)`` from 0, ``(N,)`` or None.
        row_bytes / rows / tables: per feature of the group, its table's stored row bytes, rows and name.
        out: ``(B, total_D)`` in the TBE's output dtype (may be a column slice of a wider output).
    Raises ``ValueError`` on ids out of range (the first range's error when several have one).
    """
    num_features = len(rows)
    batch = (offsets.numel() - 1) // num_features
    starts: List[int] = offsets[::batch].tolist() if batch > 0 else [0] * (num_features + 1)
    costs = [float(starts[f + 1] - starts[f] + batch) * row_bytes[f] for f in range(num_features)]
    # more ranges than threads only where each still holds RANGES_PER_THREAD * MIN_IDS_PER_PART ids on average
    num_ranges = max(parts, min(RANGES_PER_THREAD * parts, starts[-1] // (RANGES_PER_THREAD * MIN_IDS_PER_PART)))
    bounds = split_points(costs, num_ranges)
    n = len(bounds) - 1
    d: List[int] = tbe.D_offsets.tolist()  # type: ignore[union-attr, operator]
    grad = torch.is_grad_enabled()
    inference = torch.is_inference_mode_enabled()
    errors: List[Optional[BaseException]] = [None] * n
    next_range = itertools.count()  # next(...) is atomic under the GIL
    lock = threading.Lock()
    finished = [0]
    all_finished = threading.Event()

    def run() -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            while True:
                r = next(next_range)
                if r >= n:
                    return
                a, b = bounds[r], bounds[r + 1]
                try:
                    _check_range(indices, starts, a, b, rows, tables)
                    out[:, d[a]: d[b]].copy_(_lookup_range(tbe, indices, offsets, weights, a, b, batch))
                except BaseException as e:  # noqa: B036  (raised in the caller's thread once every range is done)
                    errors[r] = e
                finally:
                    with lock:
                        finished[0] += 1
                        if finished[0] == n:
                            all_finished.set()

    workers = min(parts, n) - 1
    if workers > 0:
        pool = threads.pool(workers)
        for _ in range(workers):
            pool.submit(run)
    run()
    # Wait for the ranges other threads took, not for the threads: one that wakes after the caller has taken
    # every range finds nothing left and returns on its own.
    all_finished.wait()
    for e in errors:
        if e is not None:
            raise e


class OneIntraOpThread:
    """Context: ``torch.set_num_threads(1)`` inside, the previous count restored on exit. While a lookup's parts
    run, the ops they (and the caller) run stay on their threads: no OpenMP team is forked per op in the caller
    or in a worker (a new thread takes the count in effect when it first runs an op), so the parts never wait on
    OpenMP barriers. The count is process-wide: torch ops of other Python threads meanwhile run on one thread."""

    def __init__(self) -> None:
        self.previous = torch.get_num_threads()

    def __enter__(self) -> "OneIntraOpThread":
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)
