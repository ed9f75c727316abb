"""Helpers the train pipelines share: device copies, stream waits, starting input dists, a loader thread.

Stream arguments are CUDA streams or None; on CPU every stream helper is a no-op (the work runs in order
on the calling thread, and gloo's collectives progress on their own threads).
"""

import concurrent.futures
import contextlib
import queue
import threading
from collections import deque
from typing import Any, Dict, Generator, Iterator, List, Optional, TypeVar

import torch
import torch.distributed as dist
from recsys_lib.distributed.logging_handlers import (  # noqa: F401 - public here, as in TorchRec
    log_clear_input_dist_tensors,
    log_free_features_storage_early,
    log_pipeline_module_info,
)

from recsys_lib.distributed.train_pipeline._rewrite import (  # noqa: F401
    _jit_modules,
    _override_input_dist_forwards,
    _pipeline_detach_model,
    _rewrite_model,
)
from recsys_lib.distributed.train_pipeline.pipeline_context import (
    EmbeddingTrainPipelineContext,
    PrefetchTrainPipelineContext,
    TrainPipelineContext,
)
from recsys_lib.distributed.train_pipeline.postproc import PipelinedPostproc, _stream_context
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.streamable import Pipelineable

In = TypeVar("In", bound=Pipelineable)


def _is_cuda(stream: Optional[torch.Stream]) -> bool:
    return stream is not None and stream.device_type == "cuda"


def _batch_tensor_size(batch: Any) -> int:
    """Bytes of the tensors directly held by ``batch`` (a tensor, or an object's tensor attributes)."""
    if isinstance(batch, torch.Tensor):
        return batch.numel() * batch.element_size()
    fields = vars(batch).values() if hasattr(batch, "__dict__") else []
    return sum(v.numel() * v.element_size() for v in fields if isinstance(v, torch.Tensor))


def _to_device(batch: In, device: torch.device, non_blocking: bool, data_copy_stream: Optional[torch.Stream] = None) -> In:
    """``batch.to(device)``; on CUDA the copy runs on ``data_copy_stream`` when given."""
    if not hasattr(batch, "to"):
        raise TypeError(f"a pipeline batch must have .to(device, non_blocking) (a Pipelineable); got {type(batch).__name__}")
    with _stream_context(data_copy_stream if _is_cuda(data_copy_stream) else None):
        return batch.to(device=device, non_blocking=non_blocking)


def _wait_for_batch(batch: In, stream: Optional[torch.Stream], record_stream: bool = True) -> None:
    """On CUDA: the current stream waits for ``stream`` and ``batch`` is marked as used on it."""
    if not _is_cuda(stream):
        return
    current = torch.cuda.current_stream(stream.device)
    current.wait_stream(stream)
    if record_stream:
        batch.record_stream(current)


def _wait_for_events(batch: In, context: TrainPipelineContext, stream: Optional[torch.Stream]) -> None:
    """On CUDA: ``stream`` waits for the context's events and ``batch`` is marked as used on it."""
    if not _is_cuda(stream):
        return
    for event in context.events:
        event.wait(stream)
    context.events.clear()
    batch.record_stream(stream)


def _clear_releasable_inputs(context: TrainPipelineContext) -> None:
    context.postproc_fwd_results.clear()


def _clear_input_dist_tensors(context: TrainPipelineContext) -> None:
    context.input_dist_splits_requests.clear()


def _start_data_dist(pipelined_modules: List[ShardedModule], batch: Pipelineable, context: TrainPipelineContext) -> None:
    """Starts each pipelined module's input dist for ``batch`` (phase 1: split sizes) into ``context``."""
    for module in pipelined_modules:
        forward = module.forward
        args, kwargs = forward.args.build_args_kwargs(batch)
        ctx = module.create_context()
        context.module_contexts[forward.name] = ctx
        context.input_dist_splits_requests[forward.name] = module.input_dist(ctx, *args, **kwargs)
    _fuse_input_dist_splits(context)


def _fuse_input_dist_splits(context: TrainPipelineContext) -> None:
    """Groups the split-size exchanges of every module in the context (one entry in ``fused_splits_awaitables``).

    Nothing is waited here: the exchanges stay in flight until ``wait_sparse_data_dist`` (after the current
    batch's forward), so starting batch i+1's input dist does not make the ranks meet before batch i's forward.
    """
    context.fused_splits_awaitables.append((list(context.input_dist_splits_requests), None))


def _take_dist_input(module: ShardedModule, context: TrainPipelineContext) -> Any:
    """``(name, distributed input, module context)`` of a pipelined module, taken out of ``context``."""
    name = module.forward.name
    return name, context.input_dist_tensors_requests.pop(name).wait(), context.module_contexts.pop(name)


def _start_embedding_lookup(
    module: ShardedModule,
    context: EmbeddingTrainPipelineContext,
    source_stream: Optional[torch.Stream],
    target_stream: Optional[torch.Stream],
    stream_context: Any,
) -> None:
    """Waits the module's input dist and starts its lookup + output dist; the awaitable goes in the context."""
    name, data, ctx = _take_dist_input(module, context)
    if _is_cuda(source_stream) and _is_cuda(target_stream):
        target_stream.wait_stream(source_stream)
    with stream_context(target_stream):
        context.embedding_a2a_requests[name] = module.compute_and_output_dist(ctx, data)


def _prefetch_embeddings(
    batch: In,
    context: PrefetchTrainPipelineContext,
    pipelined_modules: List[ShardedModule],
    device: torch.device,
    stream_context: Any,
    data_dist_stream: Optional[torch.Stream],
    default_stream: Optional[torch.Stream],
) -> Dict[str, Any]:
    """Waits each module's input dist and prefetches its rows (a no-op for kernels without a cache).

    Returns module name → distributed input; contexts move to ``context.module_contexts_post_prefetch``.
    """
    data_per_module: Dict[str, Any] = {}
    for module in pipelined_modules:
        name, data, ctx = _take_dist_input(module, context)
        with stream_context(default_stream):
            module.prefetch(ctx=ctx, dist_input=data, forward_stream=default_stream)
        data_per_module[name] = data
        context.module_contexts_post_prefetch[name] = ctx
    return data_per_module


def prefetch_embeddings(
    context: PrefetchTrainPipelineContext,
    pipelined_modules: List[ShardedModule],
    device: torch.device,
    stream_context: Any,
    data_dist_stream: Optional[torch.Stream],
    forward_stream: Optional[torch.Stream],
) -> None:
    """As ``_prefetch_embeddings``, storing the inputs in ``context.module_input_post_prefetch``."""
    data = _prefetch_embeddings(None, context, pipelined_modules, device, stream_context, data_dist_stream, forward_stream)
    context.module_input_post_prefetch.update(data)


@contextlib.contextmanager
def use_context_for_postprocs(
    pipelined_postprocs: List[PipelinedPostproc], next_batch_context: TrainPipelineContext
) -> Generator[None, None, None]:
    """Within the block, the postprocs cache into ``next_batch_context``; their previous contexts come back after."""
    previous = [p.get_context() for p in pipelined_postprocs]
    for p in pipelined_postprocs:
        p.set_context(next_batch_context)
    try:
        yield
    finally:
        for p, ctx in zip(pipelined_postprocs, previous):
            p.set_context(ctx)


def get_h2d_func(batch: In, device: torch.device) -> Pipelineable:
    """``batch`` copied to ``device`` (non-blocking)."""
    return batch.to(device=device, non_blocking=True)


def _is_data_loading_retriable(exception: Exception) -> bool:
    return isinstance(exception, (TimeoutError, ConnectionError))


class _BatchAgreement:
    """An in-flight agreement of every rank of a group on "I have a batch" (1-element all-reduce, MIN).

    ``result()`` waits for it. Started when a batch is read and waited only when the batch is about to be
    used, the all-reduce travels behind the step's own collectives instead of making the ranks meet.
    """

    def __init__(self, has_batch: bool, pg: Optional[dist.ProcessGroup]) -> None:
        self._flag = torch.tensor([1 if has_batch else 0], dtype=torch.int32)
        self._work: Optional[Any] = None
        if pg is not None and dist.is_initialized() and dist.get_world_size(pg) > 1:
            self._work = dist.all_reduce(self._flag, op=dist.ReduceOp.MIN, group=pg, async_op=True)

    def result(self) -> bool:
        if self._work is not None:
            self._work.wait()
            self._work = None
        return bool(self._flag.item())


def _agree_has_batch(has_batch: bool, pg: Optional[dist.ProcessGroup]) -> bool:
    """True when every rank of ``pg`` has a batch: one 1-element all-reduce (MIN), skipped without a group.

    The ranks of a sharded model run collectives in every step, so they must stop at the same step: a rank
    whose loader ran dry would otherwise leave the others waiting in an all-to-all forever.
    """
    return _BatchAgreement(has_batch, pg).result()


class DataLoadingThread(threading.Thread):
    """Reads batches from ``dataloader_iter`` on a thread and copies them to ``device`` ahead of use.

    ``get_next_batch()`` returns the next batch, or None once the iterator is exhausted.

    Args:
        device: where batches go.
        dataloader_iter: the source.
        to_device_non_blocking: ``non_blocking`` of the copies.
        memcpy_stream_priority: priority of the copy stream created on CUDA.
        memcpy_stream: the copy stream to use (CUDA), instead of creating one.
    """

    def __init__(
        self,
        device: torch.device,
        dataloader_iter: Iterator[In],
        to_device_non_blocking: bool,
        memcpy_stream_priority: int = 0,
        memcpy_stream: Optional[torch.Stream] = None,
    ) -> None:
        super().__init__(name="DataLoadingThread", daemon=True)
        self._device = device
        self._dataloader_iter = dataloader_iter
        self._to_device_non_blocking = to_device_non_blocking
        self._memcpy_stream: Optional[torch.Stream] = memcpy_stream
        if memcpy_stream is None and device.type == "cuda":
            self._memcpy_stream = torch.cuda.Stream(device=device, priority=memcpy_stream_priority)
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=1)
        self._stop_event = threading.Event()
        self._error: Optional[BaseException] = None

    def run(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.set_device(self._device)
        while not self._stop_event.is_set():
            try:
                batch = next(self._dataloader_iter)
                item = _to_device(batch, self._device, self._to_device_non_blocking, self._memcpy_stream)
            except StopIteration:
                item = None
            except BaseException as e:  # noqa: B036 - re-raised in get_next_batch on the caller's thread
                self._error = e
                item = None
            self._put(item)
            if item is None:
                return

    def _put(self, item: Any) -> None:
        while not self._stop_event.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def stop(self) -> None:
        self._stop_event.set()
        with contextlib.suppress(queue.Empty):
            self._queue.get_nowait()  # unblock a producer waiting on a full queue
        self.join()

    def get_next_batch(self, none_throws: bool = False) -> Optional[In]:
        if self._stop_event.is_set() and self._queue.empty():
            batch = None
        else:
            batch = self._queue.get()
            if batch is None:
                self._queue.put(None)  # later calls also see the end
        if self._error is not None:
            raise self._error
        if batch is None and none_throws:
            raise StopIteration
        if batch is not None:
            _wait_for_batch(batch, self._memcpy_stream)
        return batch


class FutureDeque(deque):
    """A deque whose ``pop``/``popleft``/``[i]`` wait the value when it is a future (``result()``) or an
    awaitable (``wait()``); indexing stores the resolved value in place."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    def __getitem__(self, index: Any) -> Any:
        item = super().__getitem__(index)
        resolved = _resolve(item)
        if resolved is not item:
            super().__setitem__(index, resolved)
        return resolved

    def pop(self) -> Any:  # type: ignore[override]
        return _resolve(super().pop())

    def popleft(self) -> Any:  # type: ignore[override]
        return _resolve(super().popleft())


def _resolve(item: Any) -> Any:
    if isinstance(item, concurrent.futures.Future):
        return item.result()
    if hasattr(item, "wait") and callable(item.wait):
        return item.wait()
    return item
