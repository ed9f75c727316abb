"""Moving large tensors between host and device memory (TorchRec's ``torchrec.distributed.memory_stashing``)."""

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple

import torch
from torch import nn
from torch.autograd.profiler import record_function

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

logger: logging.Logger = logging.getLogger(__name__)


def chunked_copy_(
    dst: torch.Tensor,
    src: torch.Tensor,
    chunk_size_bytes: int = 536870912,
    non_blocking: bool = True,
    dummy_compute: bool = True,
) -> None:
    """``dst.copy_(src)`` in pieces of at most ``chunk_size_bytes`` (default 512 MiB).

    A long host↔device copy keeps the copy engine busy; splitting it (with a one-element add on the GPU between
    pieces when ``dummy_compute``) lets copies queued on other streams run in the gaps. Non-contiguous tensors,
    ``chunk_size_bytes <= 0`` or a single piece fall back to one ``copy_``. Works on any device, CPU included.

    Args:
        dst: written in place; same number of elements as ``src``.
        src: source tensor.
        chunk_size_bytes: largest piece, in bytes of ``dst``'s dtype.
        non_blocking: passed to each ``copy_``.
        dummy_compute: enqueue the tiny GPU op between pieces (only if one side is on CUDA).

    Raises:
        ValueError: ``dst`` and ``src`` have different element counts.
    """
    numel = dst.numel()
    if numel != src.numel():
        raise ValueError(f"chunked_copy_ size mismatch: dst has {numel} elements, src has {src.numel()}")
    step = max(1, chunk_size_bytes // max(1, dst.element_size())) if chunk_size_bytes > 0 else numel
    if numel == 0 or step >= numel or not (dst.is_contiguous() and src.is_contiguous()):
        dst.copy_(src, non_blocking=non_blocking)
        return
    gpu = dst.device if dst.is_cuda else (src.device if src.is_cuda else None)
    spacer = torch.ones(1, device=gpu) if dummy_compute and gpu is not None else None
    flat_dst, flat_src = dst.view(-1), src.view(-1)
    for start in range(0, numel, step):
        end = min(start + step, numel)
        flat_dst[start:end].copy_(flat_src[start:end], non_blocking=non_blocking)
        if spacer is not None and end < numel:
            spacer.add_(1)


_STASH_CHUNK_SIZE_BYTES = 32 * 1024 * 1024

StashCallback = Callable[[Optional[torch.Tensor]], None]


def _need_cuda(what: str) -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f"MemoryStashingManager.{what} needs CUDA (streams and events); CUDA is not available")


def _collect_cuda_tensors(value: Any, min_size_bytes: int = 1024 * 1024) -> List[torch.Tensor]:
    """CUDA tensors of at least ``min_size_bytes`` inside ``value`` (tensors, lists, tuples, dicts, objects)."""
    if isinstance(value, torch.Tensor):
        big = value.is_cuda and value.numel() * value.element_size() >= min_size_bytes
        return [value] if big else []
    items: Iterable[Any] = ()
    if isinstance(value, (list, tuple)):
        items = value
    elif isinstance(value, dict):
        items = value.values()
    elif hasattr(value, "__dict__"):
        items = vars(value).values()
    return [t for item in items for t in _collect_cuda_tensors(item, min_size_bytes)]


def _lookup_body(lookup: nn.Module) -> nn.Module:
    inner = getattr(lookup, "module", None)  # a DDP / DMP wrapper around the lookup
    return inner if isinstance(inner, nn.Module) else lookup


class MemoryStashingManager:
    """Moves device memory (embedding weights, optimizer state, UVM caches) to host memory and back around the
    phases that do not need it, on dedicated CUDA streams. All state is class-level; ``reset()`` clears it.

    A stash copies each tensor into pinned host memory on the device-to-host stream (``chunked_copy_`` pieces of
    ``set_trunk_size`` bytes), points the tensor at the host copy and frees its device storage; the returned
    ``restore`` re-allocates the same storage and copies back on the host-to-device stream, and ``await_restore``
    makes the current stream wait for that copy. Non-CUDA tensors are never stashed (nothing to free), so on a
    CPU-only machine the stash calls find nothing and return ``None`` / no-op callbacks; the calls that need
    CUDA streams or events raise an error naming CUDA.

    Example::

        MemoryStashingManager.set_streams(torch.cuda.Stream(), torch.cuda.Stream())
        await_restore, restore = MemoryStashingManager.stash_optimizer_state(optimizer)
        ...                       # forward/backward with the optimizer state off the device
        restore(); await_restore(); optimizer.step()
    """

    _host_to_device_stream: Optional[torch.cuda.Stream] = None
    _device_to_host_stream: Optional[torch.cuda.Stream] = None
    _embedding_weight_restore_callbacks: List[Callable[..., None]] = []
    _optimizer_state_restore_callbacks: List[Callable[..., None]] = []
    _emo_cache_restore_callbacks: List[Callable[..., None]] = []
    _stash_executor: Optional[ThreadPoolExecutor] = None
    _delay_stash: bool = False
    _pending_stash_callbacks: List[StashCallback] = []
    _logged_event_keys: Set[str] = set()
    _stash_chunk_size_bytes: int = _STASH_CHUNK_SIZE_BYTES
    # device storage (``untyped_storage()._cdata``) of a stashed tensor -> (host copy, its storage offset)
    _staged_storage_buffers: Dict[int, Tuple[torch.Tensor, int]] = {}

    @classmethod
    def _log_ems_once(cls, event_name: str, metadata: Optional[Dict[str, str]] = None) -> None:
        if event_name not in cls._logged_event_keys:
            cls._logged_event_keys.add(event_name)
            logger.info("memory stashing: %s %s", event_name, metadata or {})

    @classmethod
    def thread_submit(cls, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """Runs ``fn`` on the shared one-thread executor."""
        if cls._stash_executor is None:
            cls._stash_executor = ThreadPoolExecutor(max_workers=1)
        return cls._stash_executor.submit(fn, *args, **kwargs)

    @classmethod
    def h2d_stream(cls) -> torch.cuda.Stream:
        if cls._host_to_device_stream is None:
            raise RuntimeError("MemoryStashingManager: no host-to-device stream; call set_streams first")
        return cls._host_to_device_stream

    @classmethod
    def d2h_stream(cls) -> torch.cuda.Stream:
        if cls._device_to_host_stream is None:
            raise RuntimeError("MemoryStashingManager: no device-to-host stream; call set_streams first")
        return cls._device_to_host_stream

    @classmethod
    def is_enabled(cls) -> bool:
        return cls._device_to_host_stream is not None

    @classmethod
    def set_streams(
        cls,
        host_to_device_stream: Optional[torch.cuda.Stream] = None,
        device_to_host_stream: Optional[torch.cuda.Stream] = None,
    ) -> None:
        """Sets the two CUDA streams (the device-to-host one defaults to the host-to-device one)."""
        cls._host_to_device_stream = host_to_device_stream
        cls._device_to_host_stream = device_to_host_stream if device_to_host_stream is not None else host_to_device_stream
        cls._log_ems_once("ems_streams_initialized")

    @classmethod
    def set_trunk_size(cls, size_bytes: int) -> None:
        """Piece size of the stash / restore copies (``<= 0``: one copy per tensor)."""
        cls._stash_chunk_size_bytes = size_bytes

    @classmethod
    def set_delay_stash(cls, delay: bool) -> None:
        """When on, ``stash_embedding_weights`` only queues the stash; ``execute_pending_stashes`` runs it."""
        cls._delay_stash = delay

    @classmethod
    def execute_pending_stashes(cls) -> None:
        for callback in cls._pending_stash_callbacks:
            callback(None)
        cls._pending_stash_callbacks.clear()

    @classmethod
    def reset(cls) -> None:
        """Forgets streams, callbacks and host copies; stops the executor."""
        cls._host_to_device_stream = None
        cls._device_to_host_stream = None
        cls._embedding_weight_restore_callbacks.clear()
        cls._optimizer_state_restore_callbacks.clear()
        cls._emo_cache_restore_callbacks.clear()
        cls._delay_stash = False
        cls._stash_chunk_size_bytes = _STASH_CHUNK_SIZE_BYTES
        cls._pending_stash_callbacks.clear()
        cls._staged_storage_buffers.clear()
        if cls._stash_executor is not None:
            cls._stash_executor.shutdown(wait=False)
            cls._stash_executor = None

    @classmethod
    def _drop_staging_redirect(cls, storages: List[torch.UntypedStorage]) -> None:
        for storage in storages:
            cls._staged_storage_buffers.pop(storage._cdata, None)

    @classmethod
    def staged_cpu_view_for(cls, obj: torch.Tensor) -> Optional[torch.Tensor]:
        """The host copy of ``obj`` when its device storage was freed by a stash (else ``None``)."""
        entry = cls._staged_storage_buffers.get(obj.untyped_storage()._cdata)
        if entry is None:
            return None
        host, base = entry
        offset = obj.storage_offset() - base
        if offset < 0 or offset + obj.numel() > host.numel():
            return None
        if torch.cuda.is_available():
            cls.d2h_stream().synchronize()
        return torch.empty(0, dtype=host.dtype).set_(host.untyped_storage(), offset, obj.shape, obj.stride())

    @classmethod
    def _run_restore_callbacks(cls, callbacks: List[Callable[..., None]], sync_event: Any) -> None:
        while callbacks:
            callbacks.pop()(None, sync_event)

    @classmethod
    def restore_embedding_weights(cls, _grad: Optional[torch.Tensor] = None, sync_event: Optional[torch.cuda.Event] = None) -> None:
        cls._run_restore_callbacks(cls._embedding_weight_restore_callbacks, sync_event)

    @classmethod
    def restore_optimizer_state(cls, _grad: Optional[torch.Tensor] = None, sync_event: Optional[torch.cuda.Event] = None) -> None:
        cls._run_restore_callbacks(cls._optimizer_state_restore_callbacks, sync_event)

    @classmethod
    def restore_emo_cache(cls, _grad: Optional[torch.Tensor] = None, sync_event: Optional[torch.cuda.Event] = None) -> None:
        cls._run_restore_callbacks(cls._emo_cache_restore_callbacks, sync_event)

    @classmethod
    def _stash_tensors(
        cls,
        tensors: List[torch.Tensor],
        label: str = "tensor",
        sync_event: Optional[torch.cuda.Event] = None,
        delay: bool = False,
    ) -> Tuple[StashCallback, StashCallback, StashCallback]:
        """(await_restore, restore, execute_stash) for CUDA ``tensors``; ``execute_stash`` already ran unless ``delay``."""
        stashed: List[Tuple[torch.Tensor, torch.Tensor, torch.UntypedStorage, int, int]] = []
        restore_events: List[torch.cuda.Event] = []
        if tensors and delay and sync_event is None:
            _need_cuda("_stash_tensors")
            sync_event = torch.cuda.Event()
            sync_event.record(torch.cuda.current_stream())

        def execute_stash(_grad: Optional[torch.Tensor] = None) -> None:
            if not tensors or stashed:
                return
            _need_cuda("stash")
            stream = cls.d2h_stream()
            stream.wait_event(sync_event) if sync_event is not None else stream.wait_stream(torch.cuda.current_stream())
            with record_function(f"stash {label} to host"), torch.cuda.stream(stream):
                for t in tensors:
                    host = torch.empty(t.shape, dtype=t.dtype, device="cpu", pin_memory=True)
                    chunked_copy_(host, t, chunk_size_bytes=cls._stash_chunk_size_bytes)
                    t.record_stream(stream)
                    storage = t.untyped_storage()
                    stashed.append((t, host, storage, storage.size(), t.storage_offset()))
                    cls._staged_storage_buffers[storage._cdata] = (host, t.storage_offset())
                freed = set()
                for t, _, storage, _, _ in stashed:
                    if storage.data_ptr() not in freed:
                        freed.add(storage.data_ptr())
                        storage.resize_(0)
            for t, host, _, _, _ in stashed:
                t.data = host

        def restore(_grad: Optional[torch.Tensor] = None, sync_event: Optional[torch.cuda.Event] = None) -> None:
            if not stashed:
                return
            stream = cls.h2d_stream()
            restore_events.clear()
            try:
                for t, host, storage, size, offset in stashed:
                    if storage.size() < size:
                        storage.resize_(size)
                    t.data = torch.empty(0, dtype=t.dtype, device=storage.device).set_(storage, offset, host.shape, host.stride())
                stream.wait_event(sync_event) if sync_event is not None else stream.wait_stream(torch.cuda.current_stream())
                with record_function(f"restore {label} from host"), torch.cuda.stream(stream):
                    for t, host, _, _, _ in stashed:
                        chunked_copy_(t.data, host, chunk_size_bytes=cls._stash_chunk_size_bytes)
                        t.record_stream(stream)
                    event = torch.cuda.Event()
                    event.record(stream)
                    restore_events.append(event)
            finally:
                cls._drop_staging_redirect([s for _, _, s, _, _ in stashed])

        def await_restore(_grad: Optional[torch.Tensor] = None) -> None:
            for event in restore_events:
                torch.cuda.current_stream().wait_event(event)

        if delay:
            return await_restore, restore, execute_stash
        execute_stash()
        return await_restore, restore, lambda _grad=None: None

    @classmethod
    def stash_embedding_weights(cls, lookup: nn.Module) -> Optional[Tuple[StashCallback, StashCallback, StashCallback]]:
        """Stashes the device weights of the lookup's batched kernels whose tables ask for it (``stash_weights``).

        Returns ``(await_restore, restore, execute_stash)``, or ``None`` when no CUDA weights qualify.
        """
        from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig

        body = _lookup_body(lookup)
        tensors: List[torch.Tensor] = []
        for kernel in getattr(body, "_emb_modules", []):  # a grouped lookup's batched kernels
            config = getattr(kernel, "_config", None)
            if isinstance(config, GroupedEmbeddingConfig) and not any(
                    getattr(t, "stash_weights", False) for t in config.embedding_tables):
                continue
            weights = getattr(getattr(kernel, "_emb_module", None), "weights_dev", None)
            if isinstance(weights, torch.Tensor) and weights.is_cuda:
                tensors.append(weights)
        if not tensors:
            return None
        if cls._delay_stash:
            await_restore, restore, execute_stash = cls._stash_tensors(tensors, label="embedding", delay=True)

            def deferred(_grad: Optional[torch.Tensor] = None) -> None:
                execute_stash(None)
                cls._embedding_weight_restore_callbacks.append(restore)

            cls._pending_stash_callbacks.append(deferred)
            return await_restore, restore, deferred
        await_restore, restore, execute_stash = cls._stash_tensors(tensors, label="embedding")
        cls._embedding_weight_restore_callbacks.append(restore)
        return await_restore, restore, execute_stash

    @classmethod
    def stash_emo_cache(cls, lookup: nn.Module, features: KeyedJaggedTensor) -> Optional[Tuple[StashCallback, StashCallback]]:
        """Frees the UVM-caching kernels' device caches (after flushing them); ``restore`` re-allocates the caches
        and prefetches ``features`` again. ``None`` when no such cache is held."""
        from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel, GroupedEmbeddingConfig

        body = _lookup_body(lookup)
        splits = getattr(body, "_feature_splits", None)
        if not hasattr(body, "_emb_modules") or splits is None:
            return None
        held: List[Tuple[Any, KeyedJaggedTensor, int]] = []
        for kernel, group in zip(body._emb_modules, features.split(splits)):
            config = getattr(kernel, "_config", None)
            tbe = getattr(kernel, "_emb_module", None)
            if not isinstance(config, GroupedEmbeddingConfig) or tbe is None or not any(
                    t.compute_kernel == EmbeddingComputeKernel.FUSED_UVM_CACHING for t in config.embedding_tables):
                continue
            cache = getattr(tbe, "lxu_cache_weights", None)
            if cache is None or cache.numel() == 0:
                continue
            tbe.flush()
            held.append((tbe, group, cache.untyped_storage().size()))
            cache.untyped_storage().resize_(0)
        if not held:
            return None

        def restore(_grad: Optional[torch.Tensor] = None, sync_event: Optional[torch.cuda.Event] = None) -> None:
            for tbe, group, size in held:
                tbe.lxu_cache_weights.untyped_storage().resize_(size)
                tbe.reset_cache_states()
                tbe.lxu_cache_locations_list.clear()
                tbe.prefetch(indices=group.values(), offsets=group.offsets())
                if tbe.lxu_cache_locations_list:
                    tbe.lxu_cache_locations = tbe.lxu_cache_locations_list.pop(0)

        cls._emo_cache_restore_callbacks.append(restore)
        return (lambda _grad=None: None), restore

    @classmethod
    def stash_optimizer_state(
        cls, optimizer: torch.optim.Optimizer, sync_event: Optional[torch.cuda.Event] = None
    ) -> Tuple[StashCallback, StashCallback]:
        """Stashes the optimizer's CUDA state tensors of 1 MiB or more (nested structures included)."""
        tensors = [t for s in optimizer.state.values() if isinstance(s, dict) for v in s.values()
                   for t in _collect_cuda_tensors(v)]
        await_restore, restore, _ = cls._stash_tensors(tensors, label="optimizer state", sync_event=sync_event)
        cls._optimizer_state_restore_callbacks.append(restore)
        return await_restore, restore

    @classmethod
    def _threaded(cls, what: str, work: Callable[[Any], Any]) -> Future:
        _need_cuda(what)
        event = torch.cuda.Event()
        event.record(torch.cuda.current_stream())
        device = torch.cuda.current_device()

        def run() -> Any:
            torch.cuda.set_device(device)
            return work(event)

        return cls.thread_submit(run)

    @classmethod
    def stash_optimizer_state_threaded(
        cls, optimizer: torch.optim.Optimizer
    ) -> "Future[Tuple[StashCallback, StashCallback]]":
        """``stash_optimizer_state`` on the executor, after the work queued so far on the current stream."""
        return cls._threaded("stash_optimizer_state_threaded", lambda e: cls.stash_optimizer_state(optimizer, e))

    @classmethod
    def restore_optimizer_state_threaded(cls) -> "Future[None]":
        return cls._threaded("restore_optimizer_state_threaded", lambda e: cls.restore_optimizer_state(None, e))

    @classmethod
    def restore_embedding_weights_threaded(cls) -> "Future[None]":
        return cls._threaded("restore_embedding_weights_threaded", lambda e: cls.restore_embedding_weights(None, e))
