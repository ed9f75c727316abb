"""Lookups: run every grouped kernel of one sharding on this rank and join their outputs.

A lookup holds one kernel per :class:`GroupedEmbeddingConfig` (``_emb_modules``). ``forward`` splits the
incoming KeyedJaggedTensor by group (``kjt.split([F_0, F_1, ...])``, features in group order), runs each
kernel and concatenates:

* :class:`GroupedPooledEmbeddingsLookup`: ``T[B, sum of group dim_sums]`` (along dim 1);
* :class:`GroupedEmbeddingsLookup`: ``T[N, D]`` (along dim 0), or the flat ``T[sum_f L_f * D_f]`` when the
  groups' dims differ.

A rank without tables returns an empty placeholder (``[B, 0]`` pooled, ``[0, 0]`` sequence) that still
takes part in autograd, so the output distribution runs the same collectives on every rank.
"""

from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib.distributed._tbe.pooled import BatchedDenseEmbeddingBag, BatchedFusedEmbeddingBag
from recsys_lib.distributed._tbe.sequence import BatchedDenseEmbedding, BatchedFusedEmbedding
from recsys_lib.distributed._dist.vbe_layout import merge_groups, transpose
from recsys_lib.distributed.embedding_kernel import BaseEmbedding
from recsys_lib.distributed._sharded.table_types import (
    BaseEmbeddingLookup,
    BaseGroupedFeatureProcessor,
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
)

_FUSED_KERNELS = (
    EmbeddingComputeKernel.FUSED,
    EmbeddingComputeKernel.FUSED_UVM,
    EmbeddingComputeKernel.FUSED_UVM_CACHING,
)


def dummy_tensor(device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """An empty ``[0]`` tensor that requires grad: the output of a rank without tables."""
    return torch.empty([0], dtype=dtype, device=device, requires_grad=True)


@torch.fx.wrap
def fx_wrap_tensor_view2d(x: torch.Tensor, dim0: int, dim1: int) -> torch.Tensor:
    """``x.view(dim0, dim1)``, kept as one call node when fx-traced."""
    return x.view(dim0, dim1)


@torch.fx.wrap
def embeddings_cat_empty_rank_handle(
    embeddings: List[torch.Tensor], dummy_embs_tensor: torch.Tensor, dim: int = 0
) -> torch.Tensor:
    """``cat(embeddings, dim)``; the dummy when there are none, the tensor itself when there is one."""
    if len(embeddings) == 0:
        return dummy_embs_tensor
    if len(embeddings) == 1:
        return embeddings[0]
    return torch.cat(embeddings, dim=dim)


@torch.fx.wrap
def embeddings_cat_empty_rank_handle_inference(
    embeddings: List[torch.Tensor],
    dim: int = 0,
    device: Optional[str] = None,
    dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """Inference form of :func:`embeddings_cat_empty_rank_handle` (the empty case allocates ``[0]``)."""
    if len(embeddings) == 0:
        return torch.empty([0], dtype=dtype, device=device)
    if len(embeddings) == 1:
        return embeddings[0]
    return torch.cat(embeddings, dim=dim)


class CommOpGradientScaling(torch.autograd.Function):
    """Identity forward; backward divides the gradient by ``scale_gradient_factor`` (e.g. world size)."""

    @staticmethod
    def forward(ctx: Any, input_tensor: torch.Tensor, scale_gradient_factor: int) -> torch.Tensor:
        ctx.scale_gradient_factor = scale_gradient_factor
        return input_tensor

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[torch.Tensor, None]:
        return grad_output / ctx.scale_gradient_factor, None


def _is_replicated(sharding_type: Optional[Any]) -> bool:
    """Replicated (data-parallel) weights are averaged by DDP, so their weight gradients are not scaled here."""
    if sharding_type is None:
        return False
    from recsys_lib.distributed.sharding.strategy import strategy_for

    return strategy_for(sharding_type).replicated


def _check_kernel(config: GroupedEmbeddingConfig, allowed: Tuple[EmbeddingComputeKernel, ...]) -> None:
    if config.compute_kernel not in allowed:
        raise ValueError(
            f"tables {config.table_names()}: compute kernel {config.compute_kernel.value!r} is not supported by "
            f"training lookups; expected one of {[k.value for k in allowed]}"
        )


def _create_pooled_kernel(
    config: GroupedEmbeddingConfig, device: Optional[torch.device], pg: Optional[ProcessGroup], sharding_type: Any
) -> BaseEmbedding:
    _check_kernel(config, (EmbeddingComputeKernel.DENSE,) + _FUSED_KERNELS)
    if config.compute_kernel == EmbeddingComputeKernel.DENSE:
        return BatchedDenseEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type)
    return BatchedFusedEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type)


def _create_sequence_kernel(
    config: GroupedEmbeddingConfig, device: Optional[torch.device], pg: Optional[ProcessGroup]
) -> BaseEmbedding:
    _check_kernel(config, (EmbeddingComputeKernel.DENSE,) + _FUSED_KERNELS)
    if config.compute_kernel == EmbeddingComputeKernel.DENSE:
        return BatchedDenseEmbedding(config, pg=pg, device=device)
    return BatchedFusedEmbedding(config, pg=pg, device=device)


def _split_by_group(features: Any, splits: List[int]) -> List[Any]:
    if len(splits) == 1:
        return [features]
    return features.split(splits)


class _LookupStateMixin:
    """State-dict and parameter views of a lookup: the kernels' entries, flattened (no ``_emb_modules.i``)."""

    _emb_modules: nn.ModuleList

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if destination is None:
            destination = {}
        for kernel in self._emb_modules:
            kernel.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return destination

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True) -> Any:  # type: ignore[override]
        missing: List[str] = []
        consumed = set()
        for kernel in self._emb_modules:
            own = kernel.state_dict(keep_vars=True)
            consumed.update(k for k in own if k in state_dict)
            result = kernel.load_state_dict({k: v for k, v in state_dict.items() if k in own}, strict=False)
            missing.extend(result.missing_keys)
        unexpected = [k for k in state_dict if k not in consumed]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        return nn.modules.module._IncompatibleKeys(missing, unexpected)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for kernel in self._emb_modules:
            yield from kernel.named_parameters(prefix, recurse)

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        for kernel in self._emb_modules:
            yield from kernel.named_buffers(prefix, recurse)

    def named_split_embedding_weights(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        for kernel in self._emb_modules:
            yield from kernel.named_split_embedding_weights(prefix)

    def named_parameters_by_table(self) -> Iterator[Tuple[str, nn.Parameter]]:
        for kernel in self._emb_modules:
            yield from kernel.named_parameters_by_table()

    def flush(self) -> None:
        for kernel in self._emb_modules:
            kernel.flush()

    def purge(self) -> None:
        for kernel in self._emb_modules:
            kernel.purge()

    def prefetch(self, sparse_features: Any, forward_stream: Optional[Any] = None) -> None:
        """Loads the next batch's rows into the caches of UVM-caching kernels (no-op for other kernels)."""
        splits = [c.num_features() for c in self.grouped_configs]
        for kernel, features in zip(self._emb_modules, _split_by_group(sparse_features, splits)):
            if kernel.config.compute_kernel == EmbeddingComputeKernel.FUSED_UVM_CACHING:
                kernel.emb_module.prefetch(indices=features.values(), offsets=features.offsets(),
                                           forward_stream=forward_stream)

    @property
    def grouped_configs(self) -> List[GroupedEmbeddingConfig]:
        return self._grouped_configs  # type: ignore[attr-defined]

    def register_optim_state_tracker_fn(self, record_fn: Callable[[Any, torch.Tensor, Optional[nn.Module]], None]) -> None:
        """``record_fn(features, embeddings, kernel)`` runs after each kernel's lookup (the model delta tracker's
        optimizer-state modes read the kernel's optimizer state of the looked-up rows)."""
        self.optim_state_tracker_fn = record_fn

    def _track_optim_state(self, features: Any, embeddings: torch.Tensor, kernel: nn.Module) -> None:
        record_fn = self.optim_state_tracker_fn
        if record_fn is not None:
            record_fn(features, embeddings, kernel)


class GroupedPooledEmbeddingsLookup(_LookupStateMixin, BaseEmbeddingLookup[Any, torch.Tensor]):
    """Pooled lookup: one batched kernel per grouped config, outputs concatenated along dim 1.

    Args:
        grouped_configs: this rank's groups for one sharding.
        device / pg / sharding_type: passed to the kernels.
        feature_processor: applied to groups with ``has_feature_processor`` before their kernel.
        scale_weight_gradients: divide per-sample-weight gradients by the world size (model-parallel
            shardings; the pooled-embedding gradients arriving by all-to-all are per-rank sums).

    Example::

        lookup = GroupedPooledEmbeddingsLookup([g0, g1])   # g0: f0 (D=4); g1: f1, f2 (D=8)
        out = lookup(kjt)                                 # [B, 4 + 8 + 8]
    """

    def __init__(
        self,
        grouped_configs: List[GroupedEmbeddingConfig],
        device: Optional[torch.device] = None,
        pg: Optional[ProcessGroup] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
        sharding_type: Optional[Any] = None,
        scale_weight_gradients: bool = True,
    ) -> None:
        super().__init__()
        self._grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList(
            [_create_pooled_kernel(c, device, pg, sharding_type) for c in self._grouped_configs]
        )
        self._feature_splits = [c.num_features() for c in self._grouped_configs]
        self._feature_processor = feature_processor
        self._dummy_embs_tensor = dummy_tensor(device)
        self._scale_gradient_factor = 1
        self.optim_state_tracker_fn: Optional[Callable[[Any, torch.Tensor, Optional[nn.Module]], None]] = None
        if pg is not None and scale_weight_gradients and not _is_replicated(sharding_type):
            self._scale_gradient_factor = pg.size()

    def _scale_weight_grads(self, features: Any) -> Any:
        weights = features.weights_or_none()
        if self._scale_gradient_factor <= 1 or weights is None or not weights.requires_grad:
            return features
        from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

        return KeyedJaggedTensor(
            keys=features.keys(),
            values=features.values(),
            weights=CommOpGradientScaling.apply(weights, self._scale_gradient_factor),
            lengths=features.lengths(),
            offsets=features.offsets(),
            stride=features.stride(),
            stride_per_key_per_rank=features.stride_per_key_per_rank() if features.variable_stride_per_key() else None,
        )

    def forward(self, sparse_features: Any) -> torch.Tensor:
        if len(self._emb_modules) == 0:
            if sparse_features.variable_stride_per_key():
                return self._dummy_embs_tensor
            return fx_wrap_tensor_view2d(self._dummy_embs_tensor, sparse_features.stride(), 0)
        embeddings: List[torch.Tensor] = []
        groups = _split_by_group(sparse_features, self._feature_splits)
        for config, kernel, features in zip(self._grouped_configs, self._emb_modules, groups):
            if config.has_feature_processor and self._feature_processor is not None:
                features = self._feature_processor(features)
            if config.is_weighted:
                features = self._scale_weight_grads(features)
            embeddings.append(kernel(features))
            self._track_optim_state(features, embeddings[-1], kernel)
        if sparse_features.variable_stride_per_key():
            # Each kernel's flat output is rank-major over its own features; interleave them per rank.
            spkpr = sparse_features.stride_per_key_per_rank()
            per_rank = transpose(spkpr, len(spkpr[0]) if spkpr else 0)
            return merge_groups(embeddings, per_rank, [c.embedding_dims() for c in self._grouped_configs])
        return embeddings_cat_empty_rank_handle(embeddings, self._dummy_embs_tensor, dim=1)


class GroupedEmbeddingsLookup(_LookupStateMixin, BaseEmbeddingLookup[Any, torch.Tensor]):
    """Sequence lookup: one batched kernel per grouped config, rows concatenated in feature order.

    Example::

        lookup = GroupedEmbeddingsLookup([g0, g1])   # all tables D=8
        rows = lookup(kjt)                          # [N, 8], N = number of ids
    """

    def __init__(
        self,
        grouped_configs: List[GroupedEmbeddingConfig],
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        self._grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList([_create_sequence_kernel(c, device, pg) for c in self._grouped_configs])
        self._feature_splits = [c.num_features() for c in self._grouped_configs]
        self._dummy_embs_tensor = dummy_tensor(device)
        self.optim_state_tracker_fn: Optional[Callable[[Any, torch.Tensor, Optional[nn.Module]], None]] = None

    def forward(self, sparse_features: Any) -> torch.Tensor:
        if len(self._emb_modules) == 0:
            return fx_wrap_tensor_view2d(self._dummy_embs_tensor, 0, 0)
        groups = _split_by_group(sparse_features, self._feature_splits)
        embeddings = []
        for kernel, features in zip(self._emb_modules, groups):
            embeddings.append(kernel(features))
            self._track_optim_state(features, embeddings[-1], kernel)
        dims = {e.shape[1] if e.dim() == 2 else -1 for e in embeddings}
        if len(dims) > 1 or -1 in dims:
            embeddings = [e.reshape(-1) for e in embeddings]
        return embeddings_cat_empty_rank_handle(embeddings, self._dummy_embs_tensor, dim=0)
