"""Stages of a ``StagedTrainPipeline`` and ``SparseDataDistUtil``, the stage that starts sparse input dists.

A ``PipelineStage`` is a named function run on its own stream (CUDA) that turns the previous stage's output
into its own. ``SparseDataDistUtil`` rewrites the model (as ``TrainPipelineSparseDist`` does) and offers
``start_sparse_data_dist`` as the *last* stage: the batch it returns can be fed to the model, whose
pipelined sharded modules then find their input dists already in flight.

Example::

    sdd = SparseDataDistUtil(model, data_dist_stream=None)
    pipeline = StagedTrainPipeline([
        PipelineStage("h2d", lambda b: b.to(device), stream=None),
        PipelineStage("sdd", sdd.start_sparse_data_dist, stream=None,
                      fill_callback=sdd.wait_sdd_fill_callback, data_exhausted_callback=sdd.data_exhausted_callback),
    ])
    while (batch := pipeline.progress(it)) is not None:
        loss, _ = model(batch); loss.backward(); opt.step(); opt.zero_grad()
"""

from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, Generic, List, Optional, TypeVar

import torch
from torch import nn

from recsys_lib.distributed.train_pipeline._rewrite import rewrite_model, warn_not_pipelined
from recsys_lib.distributed.train_pipeline.pipeline_context import PrefetchTrainPipelineContext, TrainPipelineContext
from recsys_lib.distributed.train_pipeline.postproc import _stream_context
from recsys_lib.distributed.train_pipeline.runtime_forwards import (
    InSyncEmbeddingPipelinedForward,
    PipelinedForward,
    PrefetchPipelinedForward,
)
from recsys_lib.distributed.train_pipeline._rewrite import _pipeline_detach_model
from recsys_lib.distributed.train_pipeline.utils import (
    _prefetch_embeddings,
    _start_data_dist,
    _start_embedding_lookup,
    use_context_for_postprocs,
)

In = TypeVar("In")
StageOut = TypeVar("StageOut")


@dataclass
class PipelineStage:
    """``runnable`` turns the previous stage's output into this stage's; ``stream`` is its CUDA stream (or None).

    ``fill_callback`` runs once the pipeline is filled; ``data_exhausted_callback`` when the data ends.
    """

    name: str
    runnable: Callable[..., Any]
    stream: Optional[torch.Stream]
    fill_callback: Optional[Callable[[], None]] = None
    data_exhausted_callback: Optional[Callable[[], None]] = None


class SparseDataDistUtil(Generic[In]):
    """Starts pipelined sharded modules' input dists as a pipeline stage (see the module docstring).

    Args:
        model: the (DMP) model; rewritten on the first batch.
        data_dist_stream: CUDA stream of the input dists (None on CPU).
        apply_jit: accepted for TorchRec compatibility.
        prefetch_stream: when given, ``prefetch`` is a stage too (prefetching forwards are installed).
        pipeline_postproc: run non-sharded modules computing sharded inputs ahead.
        embedding_lookup_stream: when given, ``start_embedding_lookup`` is a stage too.
    """

    _TRAIN_CONTEXT_VERSION = 1
    _WITH_CONTEXT_ASSERTIONS = False

    def __init__(
        self,
        model: nn.Module,
        data_dist_stream: Optional[torch.Stream],
        apply_jit: bool = False,
        prefetch_stream: Optional[torch.Stream] = None,
        pipeline_postproc: bool = False,
        embedding_lookup_stream: Optional[torch.Stream] = None,
    ) -> None:
        self.model = model
        self.data_dist_stream = data_dist_stream
        self.apply_jit = apply_jit
        self.prefetch_stream = prefetch_stream
        self._pipeline_postproc = pipeline_postproc
        self.embedding_lookup_stream = embedding_lookup_stream
        self._with_prefetch = prefetch_stream is not None
        self._with_embedding_lookup = embedding_lookup_stream is not None
        self.contexts: Deque[TrainPipelineContext] = deque()
        self._pipelined_modules: List[Any] = []
        self._pipelined_postprocs: List[Any] = []
        self._original_forwards: List[Callable[..., Any]] = []
        self._rewritten = False
        self._next_index = 0

    def should_assert_context_invariants(self, ctx: TrainPipelineContext) -> bool:
        return self._WITH_CONTEXT_ASSERTIONS

    @property
    def _have_pipelined_modules(self) -> bool:
        return bool(self._pipelined_modules)

    @property
    def _pipelined_modules_fqns(self) -> List[str]:
        return [m.forward.name for m in self._pipelined_modules]

    def _create_context(self) -> TrainPipelineContext:
        cls = PrefetchTrainPipelineContext if self._with_prefetch else TrainPipelineContext
        context = cls(index=self._next_index, version=self._TRAIN_CONTEXT_VERSION)
        self._next_index += 1
        return context

    def _forward_type(self) -> Any:
        if self._with_prefetch:
            return PrefetchPipelinedForward
        if self._with_embedding_lookup:
            return InSyncEmbeddingPipelinedForward
        return PipelinedForward

    def _initialize_or_reattach(self, context: TrainPipelineContext) -> None:
        result = rewrite_model(self.model, context, self.data_dist_stream, self._forward_type(), self._pipeline_postproc)
        self._pipelined_modules = result.pipelined_modules
        self._pipelined_postprocs = result.pipelined_postprocs
        self._original_forwards = result.original_forwards
        self._rewritten = True
        warn_not_pipelined(result.not_pipelined, strict=False)

    def _set_module_context(self, context: TrainPipelineContext) -> None:
        for module in self._pipelined_modules:
            module.forward.set_context(context)
        for postproc in self._pipelined_postprocs:
            postproc.set_context(context)

    def detach(self) -> nn.Module:
        if self._rewritten:
            _pipeline_detach_model(self.model, self._pipelined_modules, self._original_forwards, [], self._pipelined_postprocs)
            self._rewritten = False
        return self.model

    def _context_for_model_forward(self) -> TrainPipelineContext:
        return self.contexts[0]

    def start_sparse_data_dist(self, batch: In) -> In:
        """Stage runnable: starts ``batch``'s input dists (and finishes their split exchanges); returns ``batch``."""
        if batch is None:
            return batch
        context = self._create_context()
        if not self._rewritten:
            self._initialize_or_reattach(context)
        if len(self.contexts) >= 2:
            self.contexts.popleft()  # the context of the batch the model forwarded last step
        self.contexts.append(context)
        with _stream_context(self.data_dist_stream):
            with use_context_for_postprocs(self._pipelined_postprocs, context):
                _start_data_dist(self._pipelined_modules, batch, context)
        self.wait_sparse_data_dist()
        self._set_module_context(self._context_for_model_forward())
        return batch

    def wait_sparse_data_dist(self) -> None:
        context = self.contexts[-1]
        for name in list(context.input_dist_splits_requests):
            context.input_dist_tensors_requests[name] = context.input_dist_splits_requests.pop(name).wait()

    def wait_sdd_fill_callback(self) -> None:
        """Fill callback: the first batch's input dist is already waited by ``start_sparse_data_dist``."""

    def data_exhausted_callback(self) -> None:
        """Data-exhausted callback: the forward still to come uses the newest context."""
        while len(self.contexts) > 1:
            self.contexts.popleft()
        if self.contexts:
            self._set_module_context(self.contexts[0])

    def prefetch(self, batch: In) -> In:
        """Stage runnable (with ``prefetch_stream``): finishes the newest batch's input dist and prefetches rows."""
        if batch is None:
            return batch
        context = self.contexts[-1]
        data = _prefetch_embeddings(batch, context, self._pipelined_modules, torch.device("cpu"), _stream_context,
                                    self.data_dist_stream, self.prefetch_stream)
        context.module_input_post_prefetch.update(data)
        return batch

    def load_prefetch(self) -> None:
        self._set_module_context(self.contexts[-1])

    def start_embedding_lookup(self, batch: In) -> In:
        """Stage runnable (with ``embedding_lookup_stream``): starts the newest batch's lookups."""
        if batch is None:
            return batch
        for module in self._pipelined_modules:
            _start_embedding_lookup(module, self.contexts[-1], self.data_dist_stream, self.embedding_lookup_stream,
                                    _stream_context)
        return batch

    def start_sparse_data_dist_stage(
        self,
        name: str = "start_sparse_data_dist",
        runnable: Optional[Callable[..., Any]] = None,
    ) -> PipelineStage:
        """The ``PipelineStage`` running ``runnable`` (default ``start_sparse_data_dist``) on
        ``data_dist_stream``, with this util's fill and data-exhausted callbacks."""
        return PipelineStage(
            name=name,
            runnable=runnable or self.start_sparse_data_dist,
            stream=self.data_dist_stream,
            fill_callback=self.wait_sdd_fill_callback,
            data_exhausted_callback=self.data_exhausted_callback,
        )

    def start_embedding_lookup_stage(
        self,
        name: str = "start_embedding_lookup",
        runnable: Optional[Callable[..., Any]] = None,
    ) -> PipelineStage:
        """The ``PipelineStage`` running ``runnable`` (default ``start_embedding_lookup``) on
        ``embedding_lookup_stream``; needs that stream (given to the constructor)."""
        if self.embedding_lookup_stream is None:
            raise ValueError(
                "SparseDataDistUtil.start_embedding_lookup_stage needs embedding_lookup_stream (a CUDA stream); "
                "it was None"
            )
        return PipelineStage(name=name, runnable=runnable or self.start_embedding_lookup, stream=self.embedding_lookup_stream)
