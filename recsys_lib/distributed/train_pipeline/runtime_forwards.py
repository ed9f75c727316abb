"""The forwards a train pipeline puts in place of a sharded module's ``forward``.

Once the pipeline has started a batch's input dist (and, for some pipelines, its lookup) ahead of the
model's forward, the model's own call of the sharded module must not redo that work: its ``forward`` is
replaced by one of these callables, which pick up the in-flight result for the current batch from the
pipeline context (keyed by the module's fully qualified name) and finish the remaining stages.

===============================  =========================================  ================================
forward                          reads from the context                     then runs
===============================  =========================================  ================================
PipelinedForward                 ``input_dist_tensors_requests[name]``      ``compute_and_output_dist``
PrefetchPipelinedForward         ``module_input_post_prefetch[name]``       ``compute_and_output_dist``
InSyncEmbeddingPipelinedForward  ``embedding_a2a_requests[name]``           ``wait`` (graph kept)
EmbeddingPipelinedForward        ``embedding_a2a_requests[name]``           ``wait`` + detach (semi-sync)
===============================  =========================================  ================================
"""

from typing import Any, Dict, Generic, List, Optional, TypeVar, Union

import torch
import torch.distributed as dist

from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.distributed.train_pipeline.pipeline_context import (
    EmbeddingTrainPipelineContext,
    PrefetchTrainPipelineContext,
    TrainPipelineContext,
)
from recsys_lib.distributed.train_pipeline.types import CallArgs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor

TForwardContext = TypeVar("TForwardContext", bound=TrainPipelineContext)


def _on_side_stream(stream: Optional[torch.Stream]) -> bool:
    return stream is not None and stream.device_type == "cuda"


class BaseForward(Generic[TForwardContext]):
    """Common state: the module's name, its call arguments (rebuilt from the batch), module, context, stream."""

    def __init__(
        self,
        name: str,
        args: CallArgs,
        module: ShardedModule,
        context: TForwardContext,
        stream: Optional[torch.Stream] = None,
    ) -> None:
        self._name = name
        self._args = args
        self._module = module
        self._context = context
        self._stream = stream
        self._device: torch.device = stream.device if stream is not None else torch.device("cpu")

    @property
    def name(self) -> str:
        return self._name

    @property
    def args(self) -> CallArgs:
        return self._args

    def set_context(self, context: TForwardContext) -> None:
        self._context = context

    def get_context(self) -> TForwardContext:
        return self._context

    def _take(self, requests: Dict[str, Any], what: str) -> Any:
        if self._name not in requests:
            raise RuntimeError(
                f"pipelined module {self._name!r}: no {what} for this batch in the pipeline context; the model's "
                "forward was called outside the pipeline (call pipeline.detach() first to run the model directly)"
            )
        return requests.pop(self._name)

    def _sync_side_stream(self, *values: Any) -> None:
        """On CUDA: the compute stream waits for the side stream and marks ``values`` as used there."""
        if not _on_side_stream(self._stream):
            return
        current = torch.cuda.current_stream(self._stream.device)
        current.wait_stream(self._stream)
        for value in values:
            if value is not None and hasattr(value, "record_stream"):
                value.record_stream(current)


class PipelinedForward(BaseForward[TrainPipelineContext]):
    """Finishes the input dist started by the pipeline, then runs ``compute_and_output_dist``."""

    def __call__(self, *input: Any, **kwargs: Any) -> Awaitable:
        request = self._take(self._context.input_dist_tensors_requests, "input dist")
        ctx = self._take(self._context.module_contexts, "module context")
        data = request.wait()  # KJTList of this rank's share of the features
        self._sync_side_stream(data, ctx)
        return self._module.compute_and_output_dist(ctx, data)

    def _use_main_stream_for_dist_init(self) -> bool:
        return False


def _detach_in_place(out: Any, context: EmbeddingTrainPipelineContext, cur_stream: Optional[torch.Stream]) -> None:
    """Cuts ``out`` (KeyedTensor or {name: JaggedTensor}) off the tables' graph in place: its values become
    detached leaves that keep their gradient; the context keeps both ends for the embedding backward."""
    if isinstance(out, KeyedTensor):
        if cur_stream is not None and out.values().is_cuda:
            out.record_stream(cur_stream)  # type: ignore[arg-type]
        tensor = out.values()
        detached = tensor.detach().requires_grad_()
        detached.retain_grad()
        out._values = detached
        context.embedding_tensors.append([tensor])
        context.embedding_features.append([list(out.keys())])
        context.detached_embedding_tensors.append([detached])
        return
    if isinstance(out, dict):
        tensors: List[torch.Tensor] = []
        detached_list: List[torch.Tensor] = []
        for key, jt in out.items():
            if not isinstance(jt, JaggedTensor):
                raise TypeError(f"cannot detach {key!r}: a JaggedTensor was expected, got {type(jt).__name__}")
            values = jt.values()
            detached = values.detach().requires_grad_()
            detached.retain_grad()
            jt._values = detached
            tensors.append(values)
            detached_list.append(detached)
        context.embedding_tensors.append(tensors)
        context.embedding_features.append(list(out.keys()))
        context.detached_embedding_tensors.append(detached_list)
        return
    raise TypeError(f"cannot detach a pipelined module's output of type {type(out).__name__}")


def _current_stream_of(out: Any) -> Optional[torch.Stream]:
    """The current CUDA stream of ``out``'s device, or None for CPU outputs."""
    first = out.values() if isinstance(out, KeyedTensor) else next((jt.values() for jt in out.values()), None) \
        if isinstance(out, dict) else None
    if first is not None and first.is_cuda:
        return torch.cuda.current_stream(first.device)
    return None


class EmbeddingPipelinedForward(BaseForward[EmbeddingTrainPipelineContext]):
    """Returns the lookup started ahead by the pipeline, detached in training (semi-synchronous).

    The dense backward stops at the detached tensors; the pipeline later runs the embedding backward with
    their gradients (``TrainPipelineSemiSync.embedding_backward``).
    """

    def __call__(self, *input: Any, **kwargs: Any) -> Any:
        request = self._take(self._context.embedding_a2a_requests, "embedding lookup")
        out = request.wait() if isinstance(request, Awaitable) else request
        self._sync_side_stream(out)
        if self._module.training:
            self.detach_embeddings(embeddings=out, cur_stream=_current_stream_of(out))  # type: ignore[arg-type]
        return out

    def detach_embeddings(
        self, embeddings: Union[Dict[str, JaggedTensor], KeyedTensor], cur_stream: torch.Stream
    ) -> None:
        """Detaches ``embeddings`` in place (see ``_detach_in_place``); ``cur_stream`` (the consuming stream,
        None on CPU) is recorded on CUDA outputs."""
        _detach_in_place(embeddings, self._context, cur_stream)


class CPUEmbeddingPipelinedForward(EmbeddingPipelinedForward):
    """As ``EmbeddingPipelinedForward``, preferring lookups the pipeline already copied to the dense device."""

    def __call__(self, *input: Any, **kwargs: Any) -> Any:
        copied = getattr(self._context, "gpu_embedding_outputs", None)
        if copied and self._name in copied:
            return copied.pop(self._name)
        return super().__call__(*input, **kwargs)


class InSyncEmbeddingPipelinedForward(EmbeddingPipelinedForward):
    """Returns the lookup started ahead (after the previous step's update), graph kept: exactly synchronous."""

    def detach_embeddings(
        self, embeddings: Union[Dict[str, JaggedTensor], KeyedTensor], cur_stream: torch.Stream
    ) -> None:
        pass  # in-sync: the graph is kept, the dense backward reaches the tables


class PrefetchPipelinedForward(BaseForward[PrefetchTrainPipelineContext]):
    """Runs ``compute_and_output_dist`` on the input the pipeline already distributed and prefetched."""

    def __init__(
        self,
        name: str,
        args: CallArgs,
        module: ShardedModule,
        context: PrefetchTrainPipelineContext,
        prefetch_stream: Optional[torch.Stream] = None,
    ) -> None:
        super().__init__(name=name, args=args, module=module, context=context, stream=prefetch_stream)

    def __call__(self, *input: Any, **kwargs: Any) -> Awaitable:
        data = self._take(self._context.module_input_post_prefetch, "prefetched input")
        ctx = self._take(self._context.module_contexts_post_prefetch, "prefetched module context")
        self._sync_side_stream(data, ctx)
        return self._module.compute_and_output_dist(ctx, data)


class PrefetchEmbeddingPipelinedForward(PrefetchPipelinedForward):
    """The prefetching forward whose lookup may be started by the pipeline itself (``compute_and_output_dist``)."""

    def __init__(
        self,
        name: str,
        args: CallArgs,
        module: ShardedModule,
        context: PrefetchTrainPipelineContext,
        prefetch_stream: Optional[torch.Stream] = None,
    ) -> None:
        super().__init__(name=name, args=args, module=module, context=context, prefetch_stream=prefetch_stream)
        self._compute_and_output_dist_awaitable: Optional[Awaitable] = None

    def compute_and_output_dist(self) -> None:
        """Starts the lookup + output dist of the prefetched input now; the next call returns its awaitable."""
        data = self._take(self._context.module_input_post_prefetch, "prefetched input")
        ctx = self._take(self._context.module_contexts_post_prefetch, "prefetched module context")
        self._sync_side_stream(data, ctx)
        self._compute_and_output_dist_awaitable = self._module.compute_and_output_dist(ctx, data)

    def __call__(self, *input: Any, **kwargs: Any) -> Awaitable:
        if self._compute_and_output_dist_awaitable is None:
            return super().__call__(*input, **kwargs)
        awaitable, self._compute_and_output_dist_awaitable = self._compute_and_output_dist_awaitable, None
        return awaitable


class KJTAllToAllForward:
    """A plain callable doing a KJT all-to-all, put in place of an input dist's ``KJTAllToAll.forward``.

    Args:
        pg: process group.
        splits: number of keys each rank receives.
        stagger: source-rank stagger of two-level layouts.
    """

    def __init__(self, pg: dist.ProcessGroup, splits: List[int], stagger: int = 1) -> None:
        self._pg = pg
        self._splits = splits
        self._stagger = stagger
        self._a2a = KJTAllToAll(pg, splits, stagger)

    def __call__(self, input: KeyedJaggedTensor) -> Awaitable:
        return KJTAllToAll.forward(self._a2a, input)
