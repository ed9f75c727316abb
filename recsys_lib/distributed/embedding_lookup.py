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

from fbgemm_gpu.tbe.ssd.ssd_config import BackendType

from recsys_lib.distributed._core.awaitable import LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._tbe.fully_sharded import ShardedBatchedFusedEmbedding, ShardedBatchedFusedEmbeddingBag
from recsys_lib.distributed._tbe.key_value import KeyValueEmbedding, KeyValueEmbeddingBag
from recsys_lib.distributed._tbe.pooled import BatchedDenseEmbeddingBag, BatchedFusedEmbeddingBag
from recsys_lib.distributed._tbe.sequence import BatchedDenseEmbedding, BatchedFusedEmbedding
from recsys_lib.distributed._tbe.triton import TritonBatchedFusedEmbeddingBag
from recsys_lib.distributed._tbe.zero_collision import (
    ZeroCollisionEmbeddingCache,
    ZeroCollisionEmbeddingEnrichmentCache,
    ZeroCollisionKeyValueEmbedding,
    ZeroCollisionKeyValueEmbeddingBag,
)
from recsys_lib.distributed._dist.vbe_layout import merge_groups, transpose
from recsys_lib.distributed.embedding_kernel import BaseEmbedding, KernelStateViews
from recsys_lib.distributed._sharded.table_types import (
    BaseEmbeddingLookup,
    BaseEmbeddingUpdate,
    BaseGroupedFeatureProcessor,
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
)

_FUSED_KERNELS = (
    EmbeddingComputeKernel.FUSED,
    EmbeddingComputeKernel.FUSED_UVM,
    EmbeddingComputeKernel.FUSED_UVM_CACHING,
)


def dummy_tensor(sparse_features: Any, dtype: torch.dtype) -> torch.Tensor:
    """An empty ``[0]`` tensor of ``dtype`` on the features' device that requires grad: the output of a rank
    without tables."""
    return _empty_output(sparse_features.device(), dtype)


def _empty_output(device: Optional[torch.device], dtype: torch.dtype = torch.float32) -> torch.Tensor:
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
    """Identity forward; backward multiplies the gradient by ``scale_gradient_factor`` (TorchRec's semantics)."""

    @staticmethod
    def forward(ctx: Any, input_tensor: torch.Tensor, scale_gradient_factor: int) -> torch.Tensor:
        ctx.scale_gradient_factor = scale_gradient_factor
        return input_tensor

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[torch.Tensor, None]:
        return grad_output * ctx.scale_gradient_factor, None


def _is_replicated(sharding_type: Optional[Any]) -> bool:
    """Replicated (data-parallel) weights are averaged by DDP, so their weight gradients are not scaled here."""
    if sharding_type is None:
        return False
    from recsys_lib.distributed.sharding.strategy import strategy_for

    return strategy_for(sharding_type).replicated


def _fully_sharded(env: Optional[ShardingEnv]) -> bool:
    """A 2-D environment whose strategy keeps one weight shard per replica (``ShardingStrategy.FULLY_SHARDED``)."""
    strategy = getattr(env, "sharding_strategy", None)
    return getattr(strategy, "name", None) == "FULLY_SHARDED"


def _create_pooled_kernel(
    config: GroupedEmbeddingConfig,
    device: Optional[torch.device],
    pg: Optional[ProcessGroup],
    sharding_type: Any,
    env: Optional[ShardingEnv] = None,
) -> BaseEmbedding:
    kernel = config.compute_kernel
    if kernel == EmbeddingComputeKernel.DENSE:
        return BatchedDenseEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type)
    if kernel in _FUSED_KERNELS:
        if _fully_sharded(env):
            return ShardedBatchedFusedEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type, env=env)
        return BatchedFusedEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type, env=env)
    if kernel == EmbeddingComputeKernel.FUSED_TRITON:
        return TritonBatchedFusedEmbeddingBag(config, pg=pg, device=device)
    if kernel == EmbeddingComputeKernel.KEY_VALUE:
        return KeyValueEmbeddingBag(config, pg=pg, device=device, sharding_type=sharding_type)
    if kernel in (EmbeddingComputeKernel.SSD_VIRTUAL_TABLE, EmbeddingComputeKernel.DRAM_VIRTUAL_TABLE):
        backend = BackendType.SSD if kernel == EmbeddingComputeKernel.SSD_VIRTUAL_TABLE else BackendType.DRAM
        return ZeroCollisionKeyValueEmbeddingBag(
            config, pg=pg, device=device, sharding_type=sharding_type, backend_type=backend
        )
    raise ValueError(
        f"tables {config.table_names()}: compute kernel {kernel.value!r} is not supported by pooled training "
        f"lookups (dram_ssd_virtual_table serves EmbeddingCollection caches only)"
    )


def _create_sequence_kernel(
    config: GroupedEmbeddingConfig,
    device: Optional[torch.device],
    pg: Optional[ProcessGroup],
    env: Optional[ShardingEnv] = None,
) -> BaseEmbedding:
    kernel = config.compute_kernel
    if kernel == EmbeddingComputeKernel.DENSE:
        return BatchedDenseEmbedding(config, pg=pg, device=device)
    if kernel in _FUSED_KERNELS:
        if _fully_sharded(env):
            return ShardedBatchedFusedEmbedding(config, pg=pg, device=device, env=env)
        return BatchedFusedEmbedding(config, pg=pg, device=device)
    if kernel == EmbeddingComputeKernel.KEY_VALUE:
        return KeyValueEmbedding(config, pg=pg, device=device)
    if kernel == EmbeddingComputeKernel.SSD_VIRTUAL_TABLE:
        return ZeroCollisionKeyValueEmbedding(config, pg=pg, device=device, backend_type=BackendType.SSD)
    if kernel in (EmbeddingComputeKernel.DRAM_VIRTUAL_TABLE, EmbeddingComputeKernel.DRAM_SSD_VIRTUAL_TABLE):
        backend = BackendType.DRAM if kernel == EmbeddingComputeKernel.DRAM_VIRTUAL_TABLE else BackendType.DRAM_SSD
        if not config.enable_embedding_update:
            return ZeroCollisionKeyValueEmbedding(config, pg=pg, device=device, backend_type=backend)
        kvzch = (config.fused_params or {}).get("kvzch_tbe_config")
        if kvzch is not None and getattr(kvzch, "enrichment_policy", None) is not None:
            return ZeroCollisionEmbeddingEnrichmentCache(config, pg=pg, device=device, backend_type=backend)
        return ZeroCollisionEmbeddingCache(config, pg=pg, device=device, backend_type=backend)
    raise ValueError(
        f"tables {config.table_names()}: compute kernel {kernel.value!r} is not supported by sequence training lookups"
    )


def _split_by_group(features: Any, splits: List[int]) -> List[Any]:
    if len(splits) == 1:
        return [features]
    return features.split(splits)


class _LookupStateMixin(KernelStateViews):
    """State-dict and parameter views of a lookup: the kernels' entries, flattened (no ``_emb_modules.i``)."""

    _emb_modules: nn.ModuleList

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

    def get_named_split_embedding_weights_snapshot(self) -> Iterator[Tuple[str, Any, Any, Any, Any]]:
        """``(table, weights snapshot, weight ids, bucket counts, metadata)`` of the key-value kernels (others
        have no store to snapshot and yield nothing)."""
        for kernel in self._emb_modules:
            snapshot = getattr(type(kernel), "get_named_split_embedding_weights_snapshot", None)
            if snapshot is not None:
                yield from kernel.get_named_split_embedding_weights_snapshot()

    def create_rocksdb_hard_link_snapshot(self) -> None:
        """A RocksDB checkpoint of every key-value kernel's store (other kernels have none)."""
        for kernel in self._emb_modules:
            if hasattr(type(kernel), "create_rocksdb_hard_link_snapshot"):
                kernel.create_rocksdb_hard_link_snapshot()

    def get_resize_awaitables(self) -> List[LazyAwaitable[torch.Tensor]]:
        """The pending weight reduce-scatters of fully sharded (2-D) kernels from the last forward."""
        out: List[LazyAwaitable[torch.Tensor]] = []
        for kernel in self._emb_modules:
            if isinstance(kernel, (ShardedBatchedFusedEmbeddingBag, ShardedBatchedFusedEmbedding)):
                pending = kernel.get_rs_awaitable()
                if pending is not None:
                    out.append(pending)
        return out

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
        device / pg / sharding_type / env: passed to the kernels (``env``: a 2-D environment selects the fully
            sharded fused kernels).
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
        scale_weight_gradients: bool = True,
        sharding_type: Optional[Any] = None,
        env: Optional[ShardingEnv] = None,
    ) -> None:
        super().__init__()
        self._grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList(
            [_create_pooled_kernel(c, device, pg, sharding_type, env) for c in self._grouped_configs]
        )
        self._feature_splits = [c.num_features() for c in self._grouped_configs]
        self._feature_processor = feature_processor
        self._dummy_embs_tensor = _empty_output(device)
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
            # this library's convention: per-sample-weight gradients are divided by the world size here
            weights=CommOpGradientScaling.apply(weights, 1.0 / self._scale_gradient_factor),
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

    def wait_for_forward(self) -> None:
        """Waits for asynchronous forward kernels (Triton) before the output collective."""
        for kernel in self._emb_modules:
            if hasattr(type(kernel), "wait_for_forward"):
                kernel.wait_for_forward()


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
        env: Optional[ShardingEnv] = None,
    ) -> None:
        super().__init__()
        self._grouped_configs = list(grouped_configs)
        self._emb_modules = nn.ModuleList(
            [_create_sequence_kernel(c, device, pg, env) for c in self._grouped_configs]
        )
        self._feature_splits = [c.num_features() for c in self._grouped_configs]
        self._dummy_embs_tensor = _empty_output(device)
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


class GroupedEmbeddingsUpdate(BaseEmbeddingUpdate[Any]):
    """Writes rows into the kernels of a sequence lookup that accept updates (``enable_embedding_update``
    groups: embedding caches), one KeyedJaggedTensor of ids + rows split by group.

    Args:
        grouped_embeddings_lookup: the lookup whose update-enabled kernels receive the writes.
    """

    def __init__(self, grouped_embeddings_lookup: GroupedEmbeddingsLookup) -> None:
        super().__init__()
        self._emb_modules: List[nn.Module] = []
        self._feature_splits: List[int] = []
        for kernel in grouped_embeddings_lookup._emb_modules:
            if kernel.config.enable_embedding_update:
                if not hasattr(type(kernel), "update"):
                    raise ValueError(
                        f"tables {kernel.config.table_names()} enable embedding updates but kernel "
                        f"{type(kernel).__name__} has no update()"
                    )
                self._emb_modules.append(kernel)
                self._feature_splits.append(kernel.config.num_features())

    def forward(self, embeddings: Any) -> None:
        for kernel, features in zip(self._emb_modules, _split_by_group(embeddings, self._feature_splits)):
            kernel.update(features)


# Quantized inference lookups (defined in ``_infer/lookups.py``; TorchRec's path is this module).
from recsys_lib.distributed._infer.lookups import (  # noqa: E402,F401
    InferGroupedEmbeddingsLookup,
    InferGroupedLookupMixin,
    InferGroupedPooledEmbeddingsLookup,
    MetaInferGroupedEmbeddingsLookup,
    MetaInferGroupedPooledEmbeddingsLookup,
)
