"""Per-batch state of a train pipeline: the in-flight input dists, module contexts and precomputed lookups.

One ``TrainPipelineContext`` travels with each batch in the pipeline (``pipeline.contexts[i]`` belongs to
``pipeline.batches[i]``). Keys of the dicts are the fully qualified names of the pipelined sharded modules.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import torch

from recsys_lib.distributed._core.awaitable import Awaitable


@dataclass
class TrainPipelineContext:
    """State of one batch.

    Attributes:
        input_dist_splits_requests: module → awaitable of the split-size exchange (phase 1 of the input dist).
        input_dist_tensors_requests: module → awaitable of the redistributed features (phase 2).
        module_contexts: module → its ``create_context()`` value for this batch.
        module_contexts_next_batch: contexts prepared for the next batch (kept for TorchRec's layout).
        fused_splits_awaitables: ``(module names, awaitable)`` when several modules' splits are waited together.
        events: CUDA events a consumer waits on (empty on CPU).
        postproc_fwd_results: pipelined postproc name → its output for this batch.
        index: the batch's position in the epoch (set by the pipelines that need it).
        version: layout version of the context.
    """

    input_dist_splits_requests: Dict[str, Awaitable[Any]] = field(default_factory=dict)
    input_dist_tensors_requests: Dict[str, Awaitable[Any]] = field(default_factory=dict)
    module_contexts: Dict[str, Any] = field(default_factory=dict)
    module_contexts_next_batch: Dict[str, Any] = field(default_factory=dict)
    fused_splits_awaitables: List[Tuple[List[str], Any]] = field(default_factory=list)
    events: List[Any] = field(default_factory=list)
    postproc_fwd_results: Dict[str, Any] = field(default_factory=dict)
    index: Optional[int] = None
    version: int = 0


@dataclass
class PrefetchTrainPipelineContext(TrainPipelineContext):
    """Adds the inputs and contexts of modules whose rows were prefetched (``PrefetchTrainPipelineSparseDist``)."""

    module_input_post_prefetch: Dict[str, Any] = field(default_factory=dict)
    module_contexts_post_prefetch: Dict[str, Any] = field(default_factory=dict)
    module_input_post_prefetch_next_batch: Dict[str, Any] = field(default_factory=dict)
    module_contexts_post_prefetch_next_batch: Dict[str, Any] = field(default_factory=dict)


@dataclass
class EmbeddingTrainPipelineContext(TrainPipelineContext):
    """Adds lookups started ahead of the forward (fused and semi-synchronous pipelines).

    Attributes:
        embedding_a2a_requests: module → awaitable of its lookup + output dist for this batch.
        embedding_tensors: per module call, the embedding tensors attached to the tables' autograd graph.
        embedding_features: the feature names of ``embedding_tensors``.
        detached_embedding_tensors: the same tensors detached (the dense part's leaves, semi-sync).
    """

    embedding_a2a_requests: Dict[str, Any] = field(default_factory=dict)
    embedding_tensors: List[List[torch.Tensor]] = field(default_factory=list)
    embedding_features: List[List[Union[str, List[str]]]] = field(default_factory=list)
    detached_embedding_tensors: List[List[torch.Tensor]] = field(default_factory=list)


@dataclass
class CPUEmbeddingTrainPipelineContext(EmbeddingTrainPipelineContext):
    """Adds the dense device and the lookups already copied there (lookups on CPU, dense part elsewhere)."""

    dense_gpu_device: str = field(default_factory=str)
    gpu_embedding_outputs: Dict[str, Any] = field(default_factory=dict)
