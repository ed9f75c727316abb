"""``DeferrableMetrics``: metric values now (a dict) or later (a ``Future`` of a dict), behind one read-only
``Mapping`` -- what ``RecMetricModule.compute()`` returns.

    values = module.compute()              # resolved at once by RecMetricModule
    values["ne-t1|window_ne"]              # dict-style access (waits for a pending Future)
    values.subscribe(logger.log)           # or a callback once the values exist (never blocks)
"""

import threading
import warnings
from concurrent.futures import Future
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch


def device_supports_async(device: torch.device) -> bool:
    """True where a device-to-host copy can run asynchronously (CUDA); False on CPU."""
    return torch.device(device).type == "cuda"


def transfer_tensors_to_cpu(tensors: Dict[str, Any]) -> Tuple[Dict[str, Any], Optional["torch.cuda.Event"]]:
    """Copies the tensors of ``tensors`` to CPU; non-tensors pass unchanged.

    CPU tensors come back as they are with no event. CUDA tensors are copied without blocking on a side
    stream (after the current stream's pending writes) into pinned memory; the returned CUDA event marks
    the end of the copies -- ``event.synchronize()`` before reading them.
    """
    devices = {v.device for v in tensors.values() if isinstance(v, torch.Tensor)}
    if not any(device_supports_async(d) for d in devices):
        return dict(tensors), None
    device = next(d for d in devices if device_supports_async(d))
    producer = torch.cuda.current_stream(device)
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(producer)
    out: Dict[str, Any] = {}
    with torch.cuda.stream(stream):
        for key, value in tensors.items():
            if isinstance(value, torch.Tensor) and value.is_cuda:
                dest = torch.empty(value.shape, dtype=value.dtype, pin_memory=True)
                dest.copy_(value, non_blocking=True)
                value.record_stream(stream)
                out[key] = dest
            else:
                out[key] = value
        event = torch.cuda.Event()
        event.record(stream)
    return out, event


class DeferrableMetrics(Mapping[str, Any]):
    """A resolved dict or a pending ``Future`` of one (see the module docstring).

    ``subscribe(callback, on_error)`` calls back once resolved (at once if already); ``resolve()`` waits and
    returns the dict; ``update(other)`` merges more values in (deferred while pending); dict-style reads
    resolve first, warning once when that blocks on a pending Future.
    """

    def __init__(self, inner: "Union[Dict[str, Any], Future[Dict[str, Any]]]") -> None:
        self._lock = threading.Lock()
        self._pending_updates: List[Union[Dict[str, Any], "DeferrableMetrics"]] = []
        self._warned = False
        if isinstance(inner, Future):
            self._future: Optional["Future[Dict[str, Any]]"] = inner
            self._values: Optional[Dict[str, Any]] = None
        elif isinstance(inner, Mapping):
            self._future = None
            self._values = dict(inner)
        else:
            raise TypeError(f"DeferrableMetrics takes a dict or a Future, got {type(inner).__name__}")

    def _warn_sync_access(self) -> None:
        if not self._warned and not self.is_resolved():
            self._warned = True
            warnings.warn("DeferrableMetrics read synchronously while its Future is pending; this blocks",
                          stacklevel=3)

    def is_resolved(self) -> bool:
        return self._future is None or self._future.done()

    def resolve(self) -> Dict[str, Any]:
        """The values; waits for a pending Future (and re-raises its exception)."""
        if self._values is None:
            assert self._future is not None
            values = dict(self._future.result())
            with self._lock:
                if self._values is None:
                    for other in self._pending_updates:
                        values.update(other.resolve() if isinstance(other, DeferrableMetrics) else other)
                    self._pending_updates = []
                    self._values = values
        return self._values  # type: ignore[return-value]

    def subscribe(self, callback: Callable[[Dict[str, Any]], None],
                  on_error: Optional[Callable[[Exception], None]] = None) -> None:
        if self._future is None:
            callback(self.resolve())
            return

        def done(future: "Future[Dict[str, Any]]") -> None:
            error = future.exception()
            if error is not None:
                if on_error is not None:
                    on_error(error)  # type: ignore[arg-type]
                return
            callback(self.resolve())

        self._future.add_done_callback(done)

    def update(self, other: Union[Dict[str, Any], "DeferrableMetrics"]) -> None:
        with self._lock:
            if self._values is None:
                self._pending_updates.append(other)
                return
        self._values.update(other.resolve() if isinstance(other, DeferrableMetrics) else other)

    def __getitem__(self, key: str) -> Any:
        self._warn_sync_access()
        return self.resolve()[key]

    def __iter__(self) -> Iterator[str]:
        self._warn_sync_access()
        return iter(self.resolve())

    def __len__(self) -> int:
        self._warn_sync_access()
        return len(self.resolve())

    def __reduce__(self) -> Any:
        # Pickles (e.g. results sent between processes) carry the resolved values, not the Future or lock.
        return (DeferrableMetrics, (self.resolve(),))

    def __repr__(self) -> str:
        if not self.is_resolved():
            return "DeferrableMetrics(pending)"
        return f"DeferrableMetrics(resolved, {len(self.resolve())} keys)"
