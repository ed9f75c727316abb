"""``TrainPipelineSparseDist``: the input dist of batch i+1 overlaps the forward/backward of batch i.

Schedule and guarantees: see ``train_pipelines.py``. State: ``batches`` / ``contexts`` (deques, oldest
first); the pipelined sharded modules and their original forwards (restored by ``detach``).
"""

from collections import deque
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib.distributed.train_pipeline._base import In, Out, TrainPipeline, _side_stream, find_process_group
from recsys_lib.distributed.train_pipeline._rewrite import rewrite_model, warn_not_pipelined
from recsys_lib.distributed.train_pipeline.backward_injection import InjectionSite, register_backward_hook
from recsys_lib.distributed.train_pipeline.pipeline_context import TrainPipelineContext
from recsys_lib.distributed.train_pipeline.postproc import _stream_context
from recsys_lib.distributed.train_pipeline.runtime_forwards import BaseForward, PipelinedForward
from recsys_lib.distributed.train_pipeline.utils import (
    _BatchAgreement,
    _agree_has_batch,
    _start_data_dist,
    _to_device,
    _wait_for_batch,
    use_context_for_postprocs,
)
from recsys_lib.distributed.train_pipeline._rewrite import _pipeline_detach_model
from recsys_lib.distributed._core.sharder import ShardedModule


class TrainPipelineSparseDist(TrainPipeline[In, Out]):
    """Pipelines the sharded modules' input dists one batch ahead of the forward (exactly synchronous).

    Args:
        model: usually a ``DistributedModelParallel``; returns ``(loss, output)``.
        optimizer: stepped after each backward.
        device: where batches are copied.
        execute_all_batches: also run the batches still in the pipeline when the data ends.
        apply_jit: script the non-sharded parts of the model after the rewrite.
        context_type: the per-batch context class.
        pipeline_postproc: also run non-sharded modules that compute a sharded module's input ahead.
        custom_model_fwd: called instead of the model to get ``(loss, output)``.
        dmp_collection_sync_interval_batches: replica sync interval of 2D-parallel models.
        enqueue_batch_after_forward: copy batch i+2 after (not before) the forward of batch i.
        enable_inplace_copy_batch / free_features_storage_early / clear_data_dist_inputs: memory options
            (accepted; CPU copies are not pooled).
    """

    # TorchRec reads these to find out what a pipeline's forwards are.
    _pipelined_forward_type: Type[BaseForward] = PipelinedForward

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        dmp_collection_sync_interval_batches: Optional[int] = 1,
        enqueue_batch_after_forward: bool = False,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__()
        self._model = model
        self._optimizer = optimizer
        self._device = device
        self._execute_all_batches = execute_all_batches
        self._apply_jit = apply_jit
        self._context_type = context_type
        self._pipeline_postproc = pipeline_postproc
        self._model_fwd: Callable[[Any], Any] = custom_model_fwd if custom_model_fwd is not None else model
        self._dmp_collection_sync_interval_batches = dmp_collection_sync_interval_batches
        self._enqueue_batch_after_forward = enqueue_batch_after_forward
        self._enable_inplace_copy_batch = enable_inplace_copy_batch
        self._free_features_storage_early = free_features_storage_early
        self._clear_data_dist_inputs = clear_data_dist_inputs
        self._strict = False
        self._memcpy_stream = _side_stream(device, priority=-1)
        self._data_dist_stream = _side_stream(device, priority=-1)
        self._default_stream: Optional[torch.Stream] = torch.cuda.current_stream(device) if device.type == "cuda" else None
        self._pg = find_process_group(model)
        self.batches: Deque[Optional[In]] = deque()
        self.contexts: Deque[TrainPipelineContext] = deque()
        self._pipelined_modules: List[ShardedModule] = []
        self._pipelined_postprocs: List[Any] = []
        self._original_forwards: List[Callable[..., Any]] = []
        self._original_kjt_dist_forwards: List[Callable[..., Any]] = []
        self._not_pipelined: Dict[str, str] = {}
        self._model_attached = True
        self._model_rewritten = False
        self._next_index = 0
        self._dataloader_iter: Optional[Iterator[In]] = None
        self._dataloader_exhausted = False
        # The batch read during the last step, with its in-flight end-of-data agreement (see _read_ahead).
        self._pending: Optional[Tuple[Optional[In], _BatchAgreement]] = None
        self._hook_handles: List[Any] = []

    # ---- what was pipelined ----

    @property
    def num_pipelined_modules(self) -> int:
        """How many sharded modules run pipelined (known after the first ``progress``)."""
        return len(self._pipelined_modules)

    @property
    def not_pipelined_modules(self) -> Dict[str, str]:
        """Sharded module name → why it runs its input dist inside the forward."""
        return dict(self._not_pipelined)

    # ---- attach / detach ----

    def detach(self) -> nn.Module:
        """Restores the modules' own forwards; the returned model can be called directly."""
        if self._model_attached and self._model_rewritten:
            _pipeline_detach_model(
                self._model, self._pipelined_modules, self._original_forwards, self._original_kjt_dist_forwards,
                self._pipelined_postprocs,
            )
            self._model_rewritten = False
        self._model_attached = False
        return self._model

    def attach(self, model: Optional[nn.Module] = None, sparse_dist: bool = True) -> None:
        """Re-installs the pipelined forwards (on ``model`` if given); in-flight input dists stay valid."""
        if model is not None:
            self._model = model
            self._model_fwd = model
        self._model_attached = True
        if self.contexts and not self._model_rewritten:
            self._pipeline_model(self.batches[0], self.contexts[0], self._pipelined_forward_type)

    def _set_module_context(self, context: TrainPipelineContext) -> None:
        for module in self._pipelined_modules:
            module.forward.set_context(context)
        for postproc in self._pipelined_postprocs:
            postproc.set_context(context)

    # ---- batches ----

    def _create_context(self) -> TrainPipelineContext:
        context = self._context_type(index=self._next_index, version=1)
        self._next_index += 1
        return context

    def _read(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        """The next batch of this rank's iterator (None at its end, or once the ranks agreed the data ended)."""
        if dataloader_iter is not self._dataloader_iter:
            self._dataloader_iter = dataloader_iter
            self._dataloader_exhausted = False
        if self._dataloader_exhausted:
            return None
        return next(dataloader_iter, None)

    def _next_batch(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        if self._dataloader_exhausted and dataloader_iter is self._dataloader_iter:
            return None
        batch = self._read(dataloader_iter)
        if not _agree_has_batch(batch is not None, self._pg):
            self._dataloader_exhausted = True
            return None
        return batch

    def _read_ahead(self, dataloader_iter: Iterator[In]) -> None:
        """Reads the next batch and starts, without waiting, the ranks' agreement that every one of them has it.

        ``_settle_read_ahead`` (at the start of the next step, right before the batch's input dist) waits for
        the agreement and queues the batch, or drops it on every rank when some rank's data ended: the same
        ``StopIteration`` step everywhere, without a blocking all-reduce between the input dist and the forward.
        """
        if self._dataloader_exhausted and dataloader_iter is self._dataloader_iter:
            return
        batch = self._read(dataloader_iter)
        agreement = _BatchAgreement(batch is not None, self._pg)
        if batch is not None:
            batch = _to_device(batch, self._device, True, self._memcpy_stream)
        self._pending = (batch, agreement)

    def _settle_read_ahead(self) -> None:
        """Queues the batch read ahead once every rank has one; otherwise marks the data as ended."""
        if self._pending is None:
            return
        batch, agreement = self._pending
        self._pending = None
        if agreement.result() and batch is not None:
            self.batches.append(batch)
            self.contexts.append(self._create_context())
        else:
            self._dataloader_exhausted = True

    def copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Tuple[Optional[In], Optional[TrainPipelineContext]]:
        batch = self._next_batch(dataloader_iter)
        if batch is None:
            return None, None
        return _to_device(batch, self._device, True, self._memcpy_stream), self._create_context()

    def inplace_copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Tuple[Optional[In], Optional[TrainPipelineContext]]:
        return self.copy_batch_to_gpu(dataloader_iter)

    def _copy_batch_to_gpu(self, dataloader_iter: Iterator[In]) -> Optional[In]:
        return self.copy_batch_to_gpu(dataloader_iter)[0]

    def enqueue_batch(self, dataloader_iter: Iterator[In]) -> bool:
        batch, context = self.copy_batch_to_gpu(dataloader_iter)
        if batch is None:
            return False
        self.batches.append(batch)
        self.contexts.append(context)
        return True

    def dequeue_batch(self) -> None:
        self.batches.popleft()
        self.contexts.popleft()

    def _wait_for_batch(self) -> None:
        _wait_for_batch(self.batches[0], self._data_dist_stream)

    # ---- the sparse data dist ----

    def _pipeline_model(self, batch: Optional[In], context: TrainPipelineContext, pipelined_forward: Type[BaseForward]) -> None:
        result = rewrite_model(
            self._model, context, self._data_dist_stream, pipelined_forward, self._pipeline_postproc, self._default_stream
        )
        self._pipelined_modules = result.pipelined_modules
        self._original_forwards = result.original_forwards
        self._pipelined_postprocs = result.pipelined_postprocs
        self._original_kjt_dist_forwards = []
        self._not_pipelined = result.not_pipelined
        self._model_rewritten = True
        warn_not_pipelined(result.not_pipelined, self._strict)

    def _init_pipelined_modules(self, batch: In, context: TrainPipelineContext, pipelined_forward: Type[BaseForward]) -> None:
        if not self._model_rewritten:
            self._pipeline_model(batch, context, pipelined_forward)
        self.start_sparse_data_dist(batch, context)
        self.wait_sparse_data_dist(context)

    def start_sparse_data_dist(self, batch: Optional[In], context: TrainPipelineContext) -> None:
        """Starts the input dists of ``batch`` (split-size exchange) into ``context``."""
        if batch is None or not self._pipelined_modules:
            return
        with _stream_context(self._data_dist_stream):
            _wait_for_batch(batch, self._memcpy_stream)
            with use_context_for_postprocs(self._pipelined_postprocs, context):
                _start_data_dist(self._pipelined_modules, batch, context)

    def wait_sparse_data_dist(self, context: TrainPipelineContext) -> None:
        """Finishes the split-size exchanges of ``context``; the tensors then travel while the model computes."""
        with _stream_context(self._data_dist_stream):
            names = list(context.input_dist_splits_requests)
            for name in names:
                context.input_dist_tensors_requests[name] = context.input_dist_splits_requests.pop(name).wait()

    def clear_sparse_data_dist_inputs(self, context: TrainPipelineContext) -> None:
        """Drops what the context holds for the input dists only (nothing once they have been waited)."""
        context.input_dist_splits_requests.clear()

    _start_sparse_data_dist = start_sparse_data_dist
    _wait_sparse_data_dist = wait_sparse_data_dist

    def fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        if len(self.batches) >= 2:
            return
        if self.batches and self._execute_all_batches:
            return
        was_empty = not self.batches
        if not self.enqueue_batch(dataloader_iter):
            return
        if was_empty:
            self._init_pipelined_modules(self.batches[0], self.contexts[0], self._pipelined_forward_type)
            self.enqueue_batch(dataloader_iter)

    _fill_pipeline = fill_pipeline

    def _fill_three_deep(self, dataloader_iter: Iterator[In], head_stage: Callable[[In, Any], None]) -> None:
        """Fill of the three-batch pipelines: batch 0 distributed and through ``head_stage`` (prefetch or
        lookup), batch 1 distributed, batch 2 read."""
        if len(self.batches) >= 3 or (self.batches and self._execute_all_batches):
            return
        was_empty = not self.batches
        if not self.enqueue_batch(dataloader_iter) or not was_empty:
            return
        self._init_pipelined_modules(self.batches[0], self.contexts[0], self._pipelined_forward_type)
        head_stage(self.batches[0], self.contexts[0])
        if self.enqueue_batch(dataloader_iter):
            self.start_sparse_data_dist(self.batches[1], self.contexts[1])
            self.wait_sparse_data_dist(self.contexts[1])
            self.enqueue_batch(dataloader_iter)

    # ---- one step ----

    def _backward(self, losses: torch.Tensor) -> None:
        torch.sum(losses, dim=0).backward()

    def _optimizer_step(self) -> None:
        self._optimizer.step()

    def _start_step(self, dataloader_iter: Iterator[In], zero_grad: bool = True) -> None:
        """Common opening of a step: re-attach, fill, ``StopIteration`` when empty, batch 0's context, zero_grad."""
        if not self._model_attached:
            self.attach(self._model)
        self._settle_read_ahead()
        self.fill_pipeline(dataloader_iter)
        if not self.batches:
            raise StopIteration
        self._set_module_context(self.contexts[0])
        if zero_grad and self._model.training:
            self._optimizer.zero_grad()

    def _finish_step(self, losses: torch.Tensor) -> None:
        """Common close of a step in training mode: backward, replica sync, optimizer step."""
        if self._model.training:
            self._backward(losses)
            self.sync_embeddings(self._model, self._dmp_collection_sync_interval_batches, self.contexts[0])
            self._optimizer_step()

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        self._start_step(dataloader_iter)
        self._wait_for_batch()
        if len(self.batches) >= 2:
            self.start_sparse_data_dist(self.batches[1], self.contexts[1])
        if not self._enqueue_batch_after_forward:
            self._read_ahead(dataloader_iter)
        losses, output = self._model_fwd(self.batches[0])
        if self._enqueue_batch_after_forward:
            self._read_ahead(dataloader_iter)
        if len(self.batches) >= 2:
            self.wait_sparse_data_dist(self.contexts[1])
        self._finish_step(losses)
        self.dequeue_batch()
        return output

    def register_backward_hook(self, site: InjectionSite, work: Callable[[TrainPipeline], None]) -> None:
        """Runs ``work(self)`` during backward when the gradient reaches ``site``."""
        self._hook_handles.append(register_backward_hook(site, self._model, lambda grad: work(self)))

    def reset(self) -> None:
        """Finishes in-flight input dists (every rank does the same), then forgets the batches."""
        if self._pending is not None:
            self._pending[1].result()  # every rank has this all-reduce in flight; finish it
            self._pending = None
        for context in self.contexts:
            for request in list(context.input_dist_splits_requests.values()):
                request.wait().wait()
            for request in list(context.input_dist_tensors_requests.values()):
                request.wait()
        self.batches.clear()
        self.contexts.clear()
        self._dataloader_exhausted = False
        self._dataloader_iter = None
        self._next_index = 0
