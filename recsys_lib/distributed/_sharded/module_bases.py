"""Bases of embedding sharders and sharded embedding modules (public at ``recsys_lib.distributed.embedding_types``).

Which sharding types and compute kernels a sharder offers, per compute device:

=================  ==========================================  ===========================================
device             sharding types                              kernels (non data-parallel / data-parallel)
=================  ==========================================  ===========================================
cpu                data_parallel, table_wise, column_wise,     fused / dense
                   table_column_wise
cuda, mtia         + row_wise, table_row_wise, grid_shard      fused (+cuda: fused_uvm, fused_uvm_caching,
                                                               key_value, ssd/dram_virtual_table) / dense
=================  ==========================================  ===========================================
"""

from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar

import torch
from torch import nn

from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
from recsys_lib.distributed.embedding_sharding import FeatureShardingMixIn, KJTList
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardedModule
from recsys_lib.distributed._core.enums import ParameterStorage
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs

M = TypeVar("M", bound=nn.Module)
CompIn = TypeVar("CompIn")
DistOut = TypeVar("DistOut")
Out = TypeVar("Out")
ShrdCtx = TypeVar("ShrdCtx")

_CUDA_ONLY_KERNELS = (
    EmbeddingComputeKernel.FUSED_UVM.value,
    EmbeddingComputeKernel.FUSED_UVM_CACHING.value,
    EmbeddingComputeKernel.KEY_VALUE.value,
    EmbeddingComputeKernel.SSD_VIRTUAL_TABLE.value,
    EmbeddingComputeKernel.DRAM_VIRTUAL_TABLE.value,
    EmbeddingComputeKernel.DRAM_SSD_VIRTUAL_TABLE.value,
)
_UVM_KERNELS = (EmbeddingComputeKernel.FUSED_UVM.value, EmbeddingComputeKernel.FUSED_UVM_CACHING.value)
_QUANT_UVM_KERNELS = (EmbeddingComputeKernel.QUANT_UVM.value, EmbeddingComputeKernel.QUANT_UVM_CACHING.value)


def _check_device_type(compute_device_type: str) -> None:
    if compute_device_type not in ("cpu", "cuda", "mtia"):
        raise ValueError(f"compute_device_type must be 'cpu', 'cuda' or 'mtia', got {compute_device_type!r}")


def _tensor_bytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.nelement()


class ModuleShardingMixIn:
    """A sharded module exposing its shardings: ``{sharding_type: FeatureShardingMixIn}``."""

    @property
    def shardings(self) -> Dict[str, FeatureShardingMixIn]:
        raise NotImplementedError


class ShardedEmbeddingModule(
    ShardedModule[CompIn, DistOut, Out, ShrdCtx],
    ModuleShardingMixIn,
):
    """Common part of sharded embedding modules: one input dist, lookup and output dist per sharding.

    Subclasses fill ``_input_dists``, ``_lookups`` and ``_output_dists`` (index ``i`` = sharding ``i``). One that
    assigns a ``ShardedEmbeddingBody`` to ``_body`` in its ``__init__`` gets its state dict (the unsharded keys) and
    parameters from it; without one these are ``nn.Module``'s.
    """

    def __init__(self, qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None) -> None:
        super().__init__(qcomm_codecs_registry)
        self._input_dists: List[nn.Module] = []
        self._lookups: List[nn.Module] = []
        self._output_dists: List[nn.Module] = []
        self.post_lookup_tracker_fn: Optional[Any] = None
        self.post_odist_tracker_fn: Optional[Any] = None
        self._body: Optional[Any] = None  # a ShardedEmbeddingBody (``_sharded/body.py``), set by the subclass

    def _initialize_torch_state(self, skip_registering: bool = False) -> None:
        """Re-reads the tables' views from the kernels (after their weight buffers were replaced)."""
        if self._body is not None:
            self._body.refresh_tables()

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        if self._body is None:
            return super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
        return self._body.state_dict(destination, prefix, keep_vars)

    def _load_from_state_dict(
        self, state_dict: Mapping[str, Any], prefix: str, local_metadata: Any, strict: bool,
        missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str],
    ) -> None:
        if self._body is None:
            super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                          error_msgs)
            return
        self._body.load_from_state_dict(state_dict, prefix, strict, missing_keys, unexpected_keys, error_msgs)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        if self._body is None:
            yield from super().named_parameters(prefix=prefix, recurse=recurse, remove_duplicate=remove_duplicate)
            return
        yield from self._body.named_parameters(prefix, recurse)

    def sharded_parameter_names(self, prefix: str = "") -> Iterator[str]:
        for name, _ in self.named_parameters(prefix=prefix):
            yield name

    def prefetch(
        self,
        dist_input: KJTList,
        forward_stream: Optional[Any] = None,
        ctx: Optional[Any] = None,
    ) -> None:
        """Lets caching kernels load the rows of the next batch (a no-op for kernels without a cache)."""
        for features, lookup in zip(dist_input, self._lookups):
            while isinstance(lookup, nn.parallel.DistributedDataParallel):
                lookup = lookup.module
            if hasattr(lookup, "prefetch"):
                lookup.prefetch(sparse_features=features, forward_stream=forward_stream)

    def extra_repr(self) -> str:
        def _block(name: str, items: Any) -> str:
            inner = "\n".join("  " + repr(m).replace("\n", "\n  ") for m in items)
            return f"{name}:\n{inner}" if inner else f"{name}: []"

        return "\n".join(
            [
                _block("lookups", self._lookups),
                _block("_input_dists", self._input_dists),
                _block("_output_dists", self._output_dists),
            ]
        )

    def train(self, mode: bool = True) -> "ShardedEmbeddingModule":
        super().train(mode)
        # Lookups kept in plain lists are not children; switch them too.
        for lookup in self._lookups:
            if isinstance(lookup, nn.Module):
                lookup.train(mode)
        return self

    def register_post_lookup_tracker_fn(self, record_fn: Any) -> None:
        """``record_fn(kjt, embeddings, module)`` is called after each lookup (used by update trackers)."""
        self.post_lookup_tracker_fn = record_fn

    def register_post_odist_tracker_fn(self, record_fn: Any) -> None:
        """``record_fn(kjt, embeddings, module)`` is called after each output distribution."""
        self.post_odist_tracker_fn = record_fn


class BaseEmbeddingSharder(ModuleSharder[M]):
    """Sharding types, kernels and storage of embedding sharders (see the module docstring table).

    Args:
        fused_params: FBGEMM arguments for every fused kernel this sharder creates (optimizer, lr, ...).
        qcomm_codecs_registry: quantized communication codecs keyed by ``CommOp.value``.
        sharded_module_order_overwrite: sharding types (any case) in the order the sharded module runs its
            shardings; types not listed follow in plan order.
    """

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        sharded_module_order_overwrite: Optional[List[str]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._fused_params: Optional[Dict[str, Any]] = fused_params
        self._sharded_module_order_overwrite: Optional[List[str]] = (
            None if sharded_module_order_overwrite is None else [s.lower() for s in sharded_module_order_overwrite]
        )

    def sharding_types(self, compute_device_type: str) -> List[str]:
        """The registry's strategies offered on ``compute_device_type`` (registry order)."""
        from recsys_lib.distributed.sharding.strategy import sharding_types_where

        _check_device_type(compute_device_type)
        if compute_device_type == "cpu":
            return sharding_types_where(lambda s: s.offered_on_cpu)
        return sharding_types_where(lambda s: s.offered_on_accelerator)

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        """Replicated (data-parallel) tables train with the dense optimizer; every other sharding fuses."""
        from recsys_lib.distributed.sharding.strategy import strategy_for

        _check_device_type(compute_device_type)
        if strategy_for(sharding_type).replicated:
            return [EmbeddingComputeKernel.DENSE.value]
        kernels = [EmbeddingComputeKernel.FUSED.value]
        if compute_device_type == "cuda":
            kernels += list(_CUDA_ONLY_KERNELS)
        return kernels

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._fused_params

    def storage_usage(self, tensor: torch.Tensor, compute_device_type: str, compute_kernel: str) -> Dict[str, int]:
        """Bytes a table shard needs, by storage kind: UVM kernels in DDR (cuda only), else HBM on an
        accelerator and DDR on CPU. (The HBM share of a UVM cache is added by the planner.)"""
        _check_device_type(compute_device_type)
        nbytes = _tensor_bytes(tensor)
        if compute_kernel in _UVM_KERNELS:
            if compute_device_type != "cuda":
                raise ValueError(f"compute kernel {compute_kernel!r} needs a cuda device, got {compute_device_type!r}")
            return {ParameterStorage.DDR.value: nbytes}
        if compute_device_type == "cpu":
            return {ParameterStorage.DDR.value: nbytes}
        return {ParameterStorage.HBM.value: nbytes}


class BaseQuantEmbeddingSharder(ModuleSharder[M]):
    """Sharder bases of quantized (inference) embedding modules: TW/RW/CW with the ``quant`` kernels.

    Args:
        fused_params: arguments for the inference TBEs.
        shardable_params: table names that may be sharded (empty: all).
    """

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        shardable_params: Optional[List[str]] = None,
    ) -> None:
        super().__init__()
        self._fused_params: Optional[Dict[str, Any]] = fused_params
        self._shardable_params: List[str] = list(shardable_params) if shardable_params else []

    def sharding_types(self, compute_device_type: str) -> List[str]:
        from recsys_lib.distributed.sharding.strategy import quant_inference_sharding_types

        _check_device_type(compute_device_type)
        return quant_inference_sharding_types()

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        _check_device_type(compute_device_type)
        kernels = [EmbeddingComputeKernel.QUANT.value]
        if compute_device_type == "cuda":
            kernels += list(_QUANT_UVM_KERNELS)
        return kernels

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._fused_params

    def shardable_parameters(self, module: M) -> Dict[str, nn.Parameter]:
        """``{table_name: weight}`` from the module's state dict (``...<table>.weight`` entries)."""
        params = {
            name.split(".")[-2]: param
            for name, param in module.state_dict().items()
            if name.endswith(".weight") and "." in name
        }
        if self._shardable_params:
            missing = [p for p in self._shardable_params if p not in params]
            if missing:
                raise ValueError(f"shardable_params {missing} are not tables of the module; tables: {sorted(params)}")
            params = {k: v for k, v in params.items() if k in self._shardable_params}
        return params  # type: ignore[return-value]

    def storage_usage(self, tensor: torch.Tensor, compute_device_type: str, compute_kernel: str) -> Dict[str, int]:
        """Quantized bytes plus 4 bytes per row (scale and bias); UVM kernels in DDR."""
        _check_device_type(compute_device_type)
        nbytes = _tensor_bytes(tensor) + tensor.shape[0] * 4
        if compute_kernel in _QUANT_UVM_KERNELS or compute_device_type == "cpu":
            return {ParameterStorage.DDR.value: nbytes}
        return {ParameterStorage.HBM.value: nbytes}


__all__ = [
    "BaseEmbeddingSharder",
    "BaseQuantEmbeddingSharder",
    "FeatureShardingMixIn",
    "ModuleShardingMixIn",
    "ShardedEmbeddingModule",
]
