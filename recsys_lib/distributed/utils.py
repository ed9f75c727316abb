"""Small helpers of the distributed package: state-dict prefixes, module copies, fused-params plumbing."""

import contextlib
import copy
import pdb
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple, Type, TypeVar, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed._core.enums import EmbeddingEvent
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.optim._emb_opt_type import emb_opt_type_to_optimizer_class, optimizer_type_to_emb_opt_type  # noqa: F401
from recsys_lib.modules.feature_processor_ import FeatureProcessorsCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.types import CopyMixIn, DataType

T = TypeVar("T")


def append_prefix(prefix: str, name: str) -> str:
    """``"a" + "b"`` → ``"a.b"``; an empty side is dropped."""
    if prefix != "" and name != "":
        return prefix + "." + name
    return prefix + name


def filter_state_dict(state_dict: "OrderedDict[str, torch.Tensor]", name: str) -> "OrderedDict[str, torch.Tensor]":
    """Entries under ``name.`` with that prefix removed (all entries for ``name == ""``)."""
    if name == "":
        return state_dict
    prefix = name + "."
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items() if k.startswith(prefix))


def add_prefix_to_state_dict(state_dict: Dict[str, Any], prefix: str) -> None:
    """Renames every key (and ``_metadata`` entry) of ``state_dict`` in place to ``prefix + key``."""
    for key in list(state_dict.keys()):
        if key == "_metadata":
            continue
        state_dict[prefix + key] = state_dict.pop(key)
    metadata = getattr(state_dict, "_metadata", None)
    if metadata is not None:
        for key in list(metadata.keys()):
            metadata[prefix + key] = metadata.pop(key)


def _has_sharded(module: nn.Module) -> bool:
    return any(isinstance(m, ShardedModule) for m in module.modules())


def get_unsharded_module_names(model: nn.Module) -> List[str]:
    """FQNs of the largest submodules containing no ``ShardedModule`` (what DMP wraps in DDP)."""
    names: Set[str] = set()

    def visit(module: nn.Module, path: str) -> None:
        for name, child in module.named_children():
            fqn = append_prefix(path, name)
            if isinstance(child, ShardedModule):
                continue
            if _has_sharded(child):
                visit(child, fqn)
            else:
                names.add(fqn)

    visit(model, "")
    return sorted(names)


@contextlib.contextmanager
def sharded_model_copy(device: Optional[torch.device]) -> Iterator[None]:
    """Inside the block, ``copy.deepcopy`` of a model copies tensors (and sharded tensors' local shards) onto
    ``device`` (if given) and shares process groups and awaitables instead of copying them."""
    patched: List[Tuple[Type[Any], Any, bool]] = []

    def patch(cls: Type[Any], fn: Any) -> None:
        had = "__deepcopy__" in cls.__dict__
        patched.append((cls, cls.__dict__.get("__deepcopy__"), had))
        cls.__deepcopy__ = fn

    def tensor_copy(self: torch.Tensor, memo: Dict[int, Any]) -> torch.Tensor:
        target = device if device is not None else self.device
        out = self.detach().to(target, copy=True)
        if isinstance(self, nn.Parameter):
            out = nn.Parameter(out, requires_grad=self.requires_grad)
        memo[id(self)] = out
        return out

    def shared(self: Any, memo: Dict[int, Any]) -> Any:
        return self

    try:
        patch(torch.Tensor, tensor_copy)
        patch(nn.Parameter, tensor_copy)
        from recsys_lib.distributed._core.awaitable import Awaitable

        patch(Awaitable, shared)
        try:
            patch(dist.ProcessGroup, shared)
        except TypeError:
            pass  # extension type without a writable __dict__: process groups are then not deep-copied anyway
        yield
    finally:
        for cls, old, had in reversed(patched):
            if had:
                cls.__deepcopy__ = old
            else:
                delattr(cls, "__deepcopy__")


def copy_to_device(module: nn.Module, current_device: torch.device, to_device: torch.device) -> nn.Module:
    """A copy of ``module`` with tensors on ``current_device`` moved to ``to_device`` (``CopyMixIn`` parts copy
    themselves)."""
    with sharded_model_copy(device=None):
        copied = copy.deepcopy(module)

    def move(t: torch.Tensor) -> torch.Tensor:
        return t.to(to_device) if t.device == current_device else t

    def walk(m: nn.Module) -> nn.Module:
        if isinstance(m, CopyMixIn):
            return m.copy(to_device)  # type: ignore[return-value]
        for name, child in list(m.named_children()):
            m._modules[name] = walk(child)
        for name, p in list(m._parameters.items()):
            if p is not None:
                m._parameters[name] = nn.Parameter(move(p.data), requires_grad=p.requires_grad)
        for name, b in list(m._buffers.items()):
            if b is not None:
                m._buffers[name] = move(b)
        return m

    return walk(copied)


class CopyableMixin(nn.Module):
    """A module that copies itself (``copy(device)``) by moving its CPU tensors to ``device``."""

    def copy(self, device: torch.device) -> nn.Module:
        return copy_to_device(self, current_device=torch.device("cpu"), to_device=device)


def merge_fused_params(
    fused_params: Optional[Dict[str, Any]] = None, param_fused_params: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """``fused_params`` overridden by a table's ``param_fused_params`` (``lr`` renamed ``learning_rate``)."""
    merged = copy.deepcopy(fused_params) if fused_params is not None else {}
    if param_fused_params:
        extra = dict(param_fused_params)
        if "lr" in extra:
            extra["learning_rate"] = extra.pop("lr")
        merged.update(extra)
    return merged


def add_params_from_parameter_sharding(
    fused_params: Optional[Dict[str, Any]], parameter_sharding: ParameterSharding
) -> Dict[str, Any]:
    """Copies the kernel options carried by a ``ParameterSharding`` (cache, HBM, rounding, bounds check,
    output dtype) into ``fused_params``."""
    out: Dict[str, Any] = dict(fused_params) if fused_params is not None else {}
    cache = parameter_sharding.cache_params
    if cache is not None:
        for key, value in (
            ("cache_algorithm", cache.algorithm), ("cache_load_factor", cache.load_factor),
            ("cache_reserved_memory", cache.reserved_memory), ("cache_precision", cache.precision),
            ("prefetch_pipeline", cache.prefetch_pipeline), ("multipass_prefetch_config", cache.multipass_prefetch_config),
        ):
            if value is not None:
                out[key] = value
    for key in ("enforce_hbm", "stochastic_rounding", "bounds_check_mode", "output_dtype"):
        value = getattr(parameter_sharding, key)
        if value is not None:
            out[key] = value
    return out


def _data_type_to_sparse_type(dt: DataType) -> Any:
    from fbgemm_gpu.split_embedding_configs import SparseType

    mapping = {DataType.FP32: SparseType.FP32, DataType.FP16: SparseType.FP16, DataType.BF16: SparseType.BF16,
               DataType.INT8: SparseType.INT8, DataType.UINT8: SparseType.INT8, DataType.INT4: SparseType.INT4,
               DataType.INT2: SparseType.INT2, DataType.NFP8: SparseType.NFP8}
    if dt not in mapping:
        raise ValueError(f"data type {dt} has no FBGEMM SparseType")
    return mapping[dt]


def convert_to_fbgemm_types(fused_params: Dict[str, Any]) -> Dict[str, Any]:
    """``cache_precision`` / ``output_dtype`` given as ``DataType`` become FBGEMM ``SparseType`` (in place)."""
    for key in ("cache_precision", "output_dtype"):
        if isinstance(fused_params.get(key), DataType):
            fused_params[key] = _data_type_to_sparse_type(fused_params[key])
    return fused_params


def init_parameters(module: nn.Module, device: torch.device) -> None:
    """Materialises meta parameters on ``device`` (or moves them there) and re-runs ``reset_parameters``."""
    with torch.no_grad():
        params = list(module.parameters())
        if not any(p.device != device for p in params):
            return
        if any(p.is_meta for p in params):
            module.to_empty(device=device)
        else:
            module.to(device)

        def reset(m: nn.Module) -> None:
            fn = getattr(m, "reset_parameters", None)
            if callable(fn):
                fn()

        module.apply(reset)


def get_device_type() -> str:
    """``cuda`` when a GPU is available, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def none_throws(optional: Optional[T], message: str = "Unexpected `None`") -> T:
    """``optional`` if not ``None``; ``AssertionError(message)`` otherwise."""
    if optional is None:
        raise AssertionError(message)
    return optional


def assert_instance(obj: Any, t: Type[T]) -> T:
    """``obj`` typed as ``t``; ``AssertionError`` naming both types otherwise."""
    if not isinstance(obj, t):
        raise AssertionError(f"expected {t.__name__}, got {type(obj).__name__}")
    return obj


def get_class_name(obj: object) -> str:
    """``obj``'s class name (``"NoneType"`` for ``None``)."""
    return type(obj).__name__


@contextlib.contextmanager
def maybe_annotate_embedding_event(
    event: EmbeddingEvent, module_fqn: Optional[str], sharding_type: Optional[str]
) -> Iterator[None]:
    """A profiler range ``## {event} {fqn} {sharding_type} ##`` when both names are known, else nothing."""
    if module_fqn and sharding_type:
        with torch.profiler.record_function(f"## {event.value} {module_fqn} {sharding_type} ##"):
            yield
    else:
        yield


def create_global_tensor_shape_stride_from_metadata(
    parameter_sharding: ParameterSharding, devices_per_node: Optional[int] = None
) -> Tuple[torch.Size, Tuple[int, int]]:
    """Global ``[rows, cols]`` (the extent of all shards) and its row-major stride."""
    spec = parameter_sharding.sharding_spec
    shards = getattr(spec, "shards", None)
    if not shards:
        raise ValueError("create_global_tensor_shape_stride_from_metadata: the parameter sharding has no shards")
    rows = max(s.shard_offsets[0] + s.shard_sizes[0] for s in shards)
    cols = max(s.shard_offsets[1] + s.shard_sizes[1] for s in shards)
    return torch.Size([rows, cols]), (cols, 1)


@dataclass
class ShardingBucketMetadata:
    """Buckets per shard of a bucket-aligned row-wise table."""

    num_buckets_per_shard: List[int]
    bucket_offsets_per_shard: List[int]
    bucket_size: int


def get_bucket_metadata_from_shard_metadata(shards: List[Any], num_buckets: int) -> ShardingBucketMetadata:
    """Bucket layout of row-wise shards (every shard must hold whole buckets)."""
    total_rows = sum(s.shard_sizes[0] for s in shards)
    if num_buckets < 1 or total_rows % num_buckets != 0:
        raise ValueError(f"num_buckets={num_buckets} must be >= 1 and divide the {total_rows} rows")
    size = total_rows // num_buckets
    per_shard, offsets = [], []
    for s in shards:
        if s.shard_sizes[0] % size != 0 or s.shard_offsets[0] % size != 0:
            raise ValueError(f"shard at row {s.shard_offsets[0]} with {s.shard_sizes[0]} rows is not bucket-aligned")
        per_shard.append(s.shard_sizes[0] // size)
        offsets.append(s.shard_offsets[0] // size)
    return ShardingBucketMetadata(per_shard, offsets, size)


def weights_bytes_in_emb_kernel(emb: nn.Module) -> int:
    """Bytes of embedding weights held by a kernel module (TBE weight buffers, else its parameters)."""
    total = 0
    found = False
    for name in ("weights_dev", "weights_host", "weights_uvm"):
        t = getattr(emb, name, None)
        if isinstance(t, torch.Tensor):
            found = True
            total += t.numel() * t.element_size()
    if found:
        return total
    for p in emb.parameters():
        if isinstance(p, ShardedTensor):
            total += sum(s.tensor.numel() * s.tensor.element_size() for s in p.local_shards())
        else:
            total += p.numel() * p.element_size()
    return total


def modify_input_for_feature_processor(
    features: KeyedJaggedTensor,
    feature_processors: Union[nn.ModuleDict, FeatureProcessorsCollection],
    is_collection: bool,
) -> None:
    """Runs the feature processors' input step on ``features`` before the input dist (in place).

    Position-weighted processors write each id's position in its bag into the weights, so the positions survive
    a row-wise split of the KJT. ``features`` gets float weights first if it has none (zeros). Per-feature
    processors (``is_collection=False``, a ``ModuleDict`` by feature) handle their features; the weights of
    features without a processor become 1. Processors without ``pre_process_input`` are skipped.
    """
    with torch.no_grad():
        if features.weights_or_none() is None:
            features._weights = torch.zeros_like(features.values(), dtype=torch.float32)
        if is_collection:
            step = getattr(feature_processors, "pre_process_input", None)  # optional hook of a processor
            if step is not None:
                step(features)
            return
        for key in features.keys():
            if key in feature_processors:
                step = getattr(feature_processors[key], "pre_process_input", None)
                if step is not None:
                    step(features[key])
            else:
                features[key].weights().fill_(1.0)


def _tbe_kernels(module: nn.Module) -> List[nn.Module]:
    """The FBGEMM split TBEs (weights in ``weights_dev``/``weights_host``/``weights_uvm``) under ``module``."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import SplitTableBatchedEmbeddingBagsCodegen

    return [m for m in module.modules() if isinstance(m, SplitTableBatchedEmbeddingBagsCodegen)]


def _convert_weights(weights: torch.Tensor, dtype: torch.dtype, use_cpu_turnaround_optimization: bool) -> torch.Tensor:
    """``weights`` in ``dtype``; the old device storage is freed (through the host when asked, to lower the peak)."""
    if weights.numel() == 0 or torch.ops.fbgemm.is_uvm_tensor(weights):
        return weights.to(dtype=dtype)
    if use_cpu_turnaround_optimization and weights.is_cuda:
        host = weights.cpu()
        weights.untyped_storage().resize_(0)
        return host.to(dtype=dtype).to(weights.device)
    converted = weights.to(dtype=dtype)
    if converted.data_ptr() != weights.data_ptr():
        weights.untyped_storage().resize_(0)
    return converted


class EmbeddingQuantizationUtils:
    """Switches the fused embedding kernels of a (sharded) model to another weight precision and back, e.g. FP16
    tables for evaluation to halve their memory, then the training precision again.

    ``quantize_embedding_modules`` converts every split TBE's weight buffers (smallest first) and remembers
    each one's precision; ``recreate_embedding_modules`` converts back. Both rebuild the per-table views (state
    dict, parameters) over the new buffers (TorchRec does so only on the way back, leaving views onto freed
    memory in between). Values go through the lower precision (the round trip rounds them).

    Example::

        utils = EmbeddingQuantizationUtils()
        utils.quantize_embedding_modules(dmp, DataType.FP16)
        evaluate(dmp)
        utils.recreate_embedding_modules(dmp)
    """

    def __init__(self) -> None:
        self._emb_kernel_to_sparse_dtype: Dict[nn.Module, Any] = {}

    def quantize_embedding_modules(
        self, module: nn.Module, converted_dtype: DataType, use_cpu_turnaround_optimization: bool = False
    ) -> None:
        sparse_dtype = _data_type_to_sparse_type(converted_dtype)
        for tbe in sorted(_tbe_kernels(module), key=weights_bytes_in_emb_kernel):
            self._emb_kernel_to_sparse_dtype.setdefault(tbe, tbe.weights_precision)
            self._convert(tbe, sparse_dtype, use_cpu_turnaround_optimization)
        # the old buffers are freed: views onto them (state dict, parameters) must move to the new ones now
        self._recalculate_torch_state(module)

    def recreate_embedding_modules(self, module: nn.Module, use_cpu_turnaround_optimization: bool = False) -> None:
        for tbe in sorted(_tbe_kernels(module), key=weights_bytes_in_emb_kernel):
            if tbe not in self._emb_kernel_to_sparse_dtype:
                raise ValueError("recreate_embedding_modules: a kernel was not converted by quantize_embedding_modules")
            self._convert(tbe, self._emb_kernel_to_sparse_dtype[tbe], use_cpu_turnaround_optimization)
        self._recalculate_torch_state(module)

    @staticmethod
    def _convert(tbe: nn.Module, sparse_dtype: Any, turnaround: bool) -> None:
        dtype = sparse_dtype.as_dtype()
        for name in ("weights_dev", "weights_host", "weights_uvm"):
            old = getattr(tbe, name)
            new = _convert_weights(old, dtype, turnaround)
            if isinstance(old, nn.Parameter):  # CPU TBEs hold weights_host as a parameter (TorchRec fails here)
                new = nn.Parameter(new, requires_grad=old.requires_grad)
            setattr(tbe, name, new)
        tbe.weights_precision = sparse_dtype

    def _recalculate_torch_state(self, module: nn.Module) -> None:
        """Every sharded embedding module re-reads its kernels' per-table views over the new buffers."""
        from recsys_lib.distributed._sharded.module_bases import ShardedEmbeddingModule

        for sub in module.modules():
            if isinstance(sub, ShardedEmbeddingModule):
                sub._initialize_torch_state(skip_registering=True)


class ForkedPdb(pdb.Pdb):
    """``pdb`` usable inside a spawned / forked rank, whose stdin is not the terminal.

    Example::

        if dist.get_rank() == 0:
            ForkedPdb().set_trace()
        dist.barrier()
    """

    def interaction(self, *args: Any, **kwargs: Any) -> None:
        saved = sys.stdin
        try:
            with open("/dev/stdin") as terminal:
                sys.stdin = terminal
                pdb.Pdb.interaction(self, *args, **kwargs)
        finally:
            sys.stdin = saved
