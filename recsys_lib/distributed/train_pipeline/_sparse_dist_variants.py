"""Variants of ``TrainPipelineSparseDist`` that differ in what they run ahead (all exactly synchronous).

==============================  ======================================================================
pipeline                        ahead of batch i's forward
==============================  ======================================================================
TrainPipelineSparseDistLite     input dist of batch i+1 only (two batches in flight, no copy-ahead)
TrainPipelineFusedSparseDist    input dist of i+1, and batch i's lookup + output dist, started right
                                after step i-1's update (``InSyncEmbeddingPipelinedForward``)
PrefetchTrainPipelineSparseDist input dist of i+2 and prefetch (cache fill) of i+1; on CPU kernels have
                                no cache, so the prefetch stage only finishes the input dist early
EvalPipelineSparseDist          forward only; batches read by a ``DataLoadingThread``
==============================  ======================================================================
"""

import contextlib
from typing import Any, Callable, ContextManager, Dict, Iterator, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib.distributed.train_pipeline._base import In, Out, _side_stream
from recsys_lib.distributed.train_pipeline._sparse_dist import TrainPipelineSparseDist
from recsys_lib.distributed.train_pipeline.pipeline_context import (
    EmbeddingTrainPipelineContext,
    PrefetchTrainPipelineContext,
    TrainPipelineContext,
)
from recsys_lib.distributed.train_pipeline.postproc import _stream_context
from recsys_lib.distributed.train_pipeline.runtime_forwards import (
    BaseForward,
    InSyncEmbeddingPipelinedForward,
    PrefetchPipelinedForward,
)
from recsys_lib.distributed.train_pipeline.utils import (
    DataLoadingThread,
    _agree_has_batch,
    _prefetch_embeddings,
    _start_embedding_lookup,
    _wait_for_batch,
)


class TrainPipelineSparseDistLite(TrainPipelineSparseDist[In, Out]):
    """Two batches in flight: batch i+1 is read and its input dist started just before batch i's forward."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        apply_jit: bool = False,
        context_type: Type[TrainPipelineContext] = TrainPipelineContext,
        pipeline_postproc: bool = False,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, True, apply_jit, context_type, pipeline_postproc, custom_model_fwd,
            enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )

    def fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        if self.batches or not self.enqueue_batch(dataloader_iter):
            return
        self._init_pipelined_modules(self.batches[0], self.contexts[0], self._pipelined_forward_type)

    def _wait_for_batch(self) -> None:
        _wait_for_batch(self.batches[0], self._data_dist_stream)

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        self._start_step(dataloader_iter)
        self._wait_for_batch()
        if self.enqueue_batch(dataloader_iter):
            self.start_sparse_data_dist(self.batches[1], self.contexts[1])
        losses, output = self._model_fwd(self.batches[0])
        if len(self.batches) >= 2:
            self.wait_sparse_data_dist(self.contexts[1])
        self._finish_step(losses)
        self.dequeue_batch()
        return output


class TrainPipelineFusedSparseDist(TrainPipelineSparseDist[In, Out]):
    """Also starts each batch's lookup + output dist ahead, right after the previous step's update.

    ``strict``: raise (instead of warn) when a sharded module cannot be pipelined.
    ``emb_lookup_stream``: ``"data_dist"``, ``"current"`` or ``"new"`` — the CUDA stream of the lookups.
    """

    _pipelined_forward_type: Type[BaseForward] = InSyncEmbeddingPipelinedForward

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        pipeline_postproc: bool = True,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        strict: bool = False,
        emb_lookup_stream: str = "data_dist",
        embedding_lookup_after_data_dist: bool = False,
        enable_inplace_copy_batch: bool = False,
        enqueue_batch_after_forward: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, EmbeddingTrainPipelineContext,
            pipeline_postproc, custom_model_fwd, enqueue_batch_after_forward=enqueue_batch_after_forward,
            enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )
        if emb_lookup_stream not in ("data_dist", "current", "new"):
            raise ValueError(f"emb_lookup_stream must be 'data_dist', 'current' or 'new', got {emb_lookup_stream!r}")
        self._strict = strict
        self._embedding_lookup_after_data_dist = embedding_lookup_after_data_dist
        self._emb_lookup_stream: Optional[torch.Stream] = {
            "data_dist": self._data_dist_stream, "current": self._default_stream, "new": _side_stream(device),
        }[emb_lookup_stream]

    def start_embedding_lookup(self, batch: Optional[In], context: EmbeddingTrainPipelineContext) -> None:
        if batch is None:
            return
        for module in self._pipelined_modules:
            _start_embedding_lookup(module, context, self._data_dist_stream, self._emb_lookup_stream, _stream_context)

    def wait_embedding_lookup(self) -> None:
        if self._emb_lookup_stream is not None and self._default_stream is not None:
            self._default_stream.wait_stream(self._emb_lookup_stream)

    def fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        was_empty = not self.batches
        super().fill_pipeline(dataloader_iter)
        if was_empty and self.batches:
            self.start_embedding_lookup(self.batches[0], self.contexts[0])

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        output = super().progress(dataloader_iter)
        if self.batches:  # batch i+1's lookup, after step i's update: the result equals the plain loop's
            self.start_embedding_lookup(self.batches[0], self.contexts[0])
        return output


class PrefetchTrainPipelineSparseDist(TrainPipelineSparseDist[In, Out]):
    """Three stages: input dist of i+2, prefetch of i+1 (cache fill; CPU: finishes its input dist), forward i."""

    _pipelined_forward_type: Type[BaseForward] = PrefetchPipelinedForward

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        execute_all_batches: bool = True,
        apply_jit: bool = False,
        pipeline_postproc: bool = True,
        custom_model_fwd: Optional[Callable[[Optional[In]], Tuple[torch.Tensor, Out]]] = None,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, PrefetchTrainPipelineContext,
            pipeline_postproc, custom_model_fwd, enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )
        self._prefetch_stream = _side_stream(device)

    def _prefetch(self, batch: Optional[In], context: PrefetchTrainPipelineContext) -> None:
        if batch is None:
            return
        data = _prefetch_embeddings(
            batch, context, self._pipelined_modules, self._device, _stream_context, self._data_dist_stream,
            self._default_stream,
        )
        context.module_input_post_prefetch.update(data)

    def fill_pipeline(self, dataloader_iter: Iterator[In]) -> None:
        self._fill_three_deep(dataloader_iter, self._prefetch)

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        self._start_step(dataloader_iter)
        _wait_for_batch(self.batches[0], self._prefetch_stream)
        if len(self.batches) >= 3:
            self.start_sparse_data_dist(self.batches[2], self.contexts[2])
        losses, output = self._model_fwd(self.batches[0])
        if len(self.batches) >= 2:
            self._prefetch(self.batches[1], self.contexts[1])
        if len(self.batches) >= 3:
            self.wait_sparse_data_dist(self.contexts[2])
        self._finish_step(losses)
        self.dequeue_batch()
        self.enqueue_batch(dataloader_iter)
        return output


class EvalPipelineSparseDist(TrainPipelineSparseDist[In, Out]):
    """Forward only, input dist one batch ahead; a ``DataLoadingThread`` reads and copies the batches."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        apply_jit: bool = False,
        pipeline_postproc: bool = False,
        enable_inplace_copy_batch: bool = False,
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, True, apply_jit, TrainPipelineContext, pipeline_postproc,
            enable_inplace_copy_batch=enable_inplace_copy_batch,
            free_features_storage_early=free_features_storage_early, clear_data_dist_inputs=clear_data_dist_inputs,
        )
        self._batch_loader: Optional[DataLoadingThread] = None

    def _loader_batch(self) -> Optional[In]:
        if self._dataloader_exhausted:
            return None
        batch = self._batch_loader.get_next_batch()
        if not _agree_has_batch(batch is not None, self._pg):
            self._dataloader_exhausted = True
            return None
        return batch

    def _append(self, batch: Optional[In]) -> bool:
        if batch is None:
            return False
        self.batches.append(batch)
        self.contexts.append(self._create_context())
        return True

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        if not self._model_attached:
            self.attach(self._model)
        if self._batch_loader is None or dataloader_iter is not self._dataloader_iter:
            self.reset()
            self._dataloader_iter = dataloader_iter
            self._batch_loader = DataLoadingThread(self._device, dataloader_iter, True, -1, self._memcpy_stream)
            self._batch_loader.start()
            if self._append(self._loader_batch()):
                self._init_pipelined_modules(self.batches[0], self.contexts[0], self._pipelined_forward_type)
        self._append(self._loader_batch())
        if not self.batches:
            raise StopIteration
        self._set_module_context(self.contexts[0])
        _wait_for_batch(self.batches[0], self._data_dist_stream)
        if len(self.batches) >= 2:
            self.start_sparse_data_dist(self.batches[1], self.contexts[1])
        _, output = self._model_fwd(self.batches[0])
        if len(self.batches) >= 2:
            self.wait_sparse_data_dist(self.contexts[1])
        self.dequeue_batch()
        return output

    def reset(self) -> None:
        if self._batch_loader is not None:
            self._batch_loader.stop()
            self._batch_loader = None
        super().reset()


class EvalPipelineFusedSparseDist(TrainPipelineFusedSparseDist[In, Out]):
    """The fused pipeline used forward-only (the model in eval mode)."""

    def __init__(self, *args: Any, enable_embedding_lookup_prefetch: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._enable_embedding_lookup_prefetch = enable_embedding_lookup_prefetch

    def _progress_prefetch(self, dataloader_iter: Iterator[In]) -> Out:
        return super().progress(dataloader_iter)

    def progress(self, dataloader_iter: Iterator[In]) -> Out:
        with torch.no_grad():
            return self._progress_prefetch(dataloader_iter)


class TrainPipelineSparseDistCompAutograd(TrainPipelineSparseDist[In, Out]):
    """``TrainPipelineSparseDist`` whose forward and backward run under compiled autograd from step 2 on.

    Options come from ``model._compiled_autograd_options`` (default: inductor, dynamic, fullgraph).
    """

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
        free_features_storage_early: bool = False,
        clear_data_dist_inputs: bool = False,
    ) -> None:
        super().__init__(
            model, optimizer, device, execute_all_batches, apply_jit, context_type, pipeline_postproc,
            custom_model_fwd, free_features_storage_early=free_features_storage_early,
            clear_data_dist_inputs=clear_data_dist_inputs,
        )
        self.compiled_autograd_options: Dict[str, Union[str, bool]] = getattr(
            model, "_compiled_autograd_options", {"backend": "inductor", "dynamic": True, "fullgraph": True}
        )
        self.initialized = False

    def get_compiled_autograd_ctx(self) -> ContextManager[Any]:
        if not self.initialized:
            self.initialized = True
            return contextlib.nullcontext()
        from torch._dynamo import compiled_autograd

        return compiled_autograd._enable(torch.compile(**self.compiled_autograd_options))

    def _backward(self, losses: torch.Tensor) -> None:
        with self.get_compiled_autograd_ctx():
            torch.sum(losses, dim=0).backward()
