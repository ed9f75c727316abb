"""Turning a trained model into an inference model: quantise embeddings (and dense layers), predict wrappers.

Flow (see docs/inference.md)::

    model = DLRM(...)                                   # trained, float
    qmodel = quantize_inference_model(model)            # EBC/EC/FP-EBC → recsys_lib.quant.* (INT8 by default)
    scripted = torch.jit.script(recsys_lib.fx.symbolic_trace(qmodel))

    sharded, plan = shard_quant_model(qmodel, world_size=2, compute_device="cpu")   # tables over 2 devices

``shard_quant_model`` needs no global flag: on CPU every "rank" is a CPU device of this process.
"""

import abc
import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple, Type

import torch
import torch.ao.quantization as quant
from torch import nn

from recsys_lib.distributed.fused_params import (  # noqa: F401  (TorchRec re-exports them here)
    FUSED_PARAM_BOUNDS_CHECK_MODE,
    FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP,
    FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS,
    FUSED_PARAM_REGISTER_TBE_BOOL,
)
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner.types import ParameterConstraints
from recsys_lib.modules.embedding_configs import QuantConfig
from recsys_lib.modules.embedding_modules import (
    EmbeddingBagCollection,
    EmbeddingBagCollectionInterface,
    EmbeddingCollection,
    EmbeddingCollectionInterface,
)
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.quant._prep import (
    MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT,
    quant_prep_enable_cache_features_order,
    quant_prep_enable_register_tbes,
)
from recsys_lib.quant.embedding_modules import (
    EmbeddingBagCollection as QuantEmbeddingBagCollection,
    EmbeddingCollection as QuantEmbeddingCollection,
    FeatureProcessedEmbeddingBagCollection as QuantFeatureProcessedEmbeddingBagCollection,
)



def trim_torch_package_prefix_from_typename(typename: str) -> str:
    """``"<torch_package_0>.a.b.C"`` → ``"a.b.C"`` (type names of modules loaded from a torch.package)."""
    if typename.startswith("<torch_package_"):
        return typename.split(".", 1)[1]
    return typename


def _default_fused_params() -> Dict[str, Any]:
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode

    return {
        FUSED_PARAM_REGISTER_TBE_BOOL: True,
        FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: True,
        FUSED_PARAM_BOUNDS_CHECK_MODE: BoundsCheckMode.NONE,
        FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP: False,
    }


DEFAULT_FUSED_PARAMS: Dict[str, Any] = _default_fused_params()

DEFAULT_QUANT_MAPPING: Dict[str, Type[torch.nn.Module]] = {
    torch.typename(EmbeddingBagCollection): QuantEmbeddingBagCollection,
    torch.typename(EmbeddingCollection): QuantEmbeddingCollection,
}

DEFAULT_QUANTIZATION_DTYPE: torch.dtype = torch.int8

FEATURE_PROCESSED_EBC_TYPE: str = torch.typename(FeatureProcessedEmbeddingBagCollection)


def quantize_feature(module: torch.nn.Module, inputs: Tuple[torch.Tensor, ...]) -> Tuple[torch.Tensor, ...]:
    """Forward pre-hook of fp16 dense modules: float32/float64 tensor inputs become float16."""
    return tuple(
        x.half() if isinstance(x, torch.Tensor) and x.dtype in (torch.float32, torch.float64) else x for x in inputs
    )


def _qconfig(weight: torch.dtype, output: torch.dtype, per_table: Optional[Dict[str, torch.dtype]]) -> QuantConfig:
    return QuantConfig(
        activation=quant.PlaceholderObserver.with_args(dtype=output),
        weight=quant.PlaceholderObserver.with_args(dtype=weight),
        per_table_weight_dtype=per_table,
    )


def quantize_embeddings(
    module: nn.Module,
    dtype: torch.dtype,
    inplace: bool,
    additional_qconfig_spec_keys: Optional[List[Type[nn.Module]]] = None,
    additional_mapping: Optional[Dict[Type[nn.Module], Type[nn.Module]]] = None,
    output_dtype: torch.dtype = torch.float,
    per_table_weight_dtype: Optional[Dict[str, torch.dtype]] = None,
) -> nn.Module:
    """Swap every ``EmbeddingBagCollection`` (plus the extra types given) for its quantized counterpart.

    Args:
        dtype: table weight dtype (``torch.qint8``, ``torch.quint4x2``, ``torch.quint2x4``, ``torch.half``,
            ``torch.float``); ``per_table_weight_dtype`` overrides it per table name.
        inplace: modify ``module`` (else a deep copy is quantised).
        output_dtype: dtype of the pooled outputs.
    """
    qconfig = _qconfig(dtype, output_dtype, per_table_weight_dtype)
    spec: Dict[Type[nn.Module], QuantConfig] = {EmbeddingBagCollection: qconfig}
    mapping: Dict[Type[nn.Module], Type[nn.Module]] = {EmbeddingBagCollection: QuantEmbeddingBagCollection}
    for t in additional_qconfig_spec_keys or []:
        spec[t] = qconfig
    mapping.update(additional_mapping or {})
    return quant.quantize_dynamic(module, qconfig_spec=spec, mapping=mapping, inplace=inplace)  # type: ignore


@dataclass
class QualNameMetadata:
    need_preproc: bool


@dataclass
class BatchingMetadata:
    """How the server batches one input: ``type`` (e.g. ``"dense"``, ``"sparse"``), ``device``, pinned inputs."""

    type: str
    device: str
    pinned: List[str]


class PredictFactory(abc.ABC):
    """Creates a model with learned weights for serving, plus the metadata a server needs to batch inputs."""

    @abc.abstractmethod
    def create_predict_module(self) -> nn.Module:
        """The predict module with its weights allocated."""

    @abc.abstractmethod
    def batching_metadata(self) -> Dict[str, BatchingMetadata]:
        """Input name → :class:`BatchingMetadata`."""

    def batching_metadata_json(self) -> str:
        return json.dumps({k: asdict(v) for k, v in self.batching_metadata().items()})

    @abc.abstractmethod
    def result_metadata(self) -> str:
        """A string naming the result type (used to split results)."""

    @abc.abstractmethod
    def run_weights_independent_tranformations(self, predict_module: torch.nn.Module) -> torch.nn.Module:
        """Transformations that need no weights (fx tracing, splitting)."""

    @abc.abstractmethod
    def run_weights_dependent_transformations(self, predict_module: torch.nn.Module) -> torch.nn.Module:
        """Transformations that read weights (lowering to a backend)."""

    def qualname_metadata(self) -> Dict[str, QualNameMetadata]:
        return {}

    def qualname_metadata_json(self) -> str:
        return json.dumps({k: asdict(v) for k, v in self.qualname_metadata().items()})

    def model_inputs_data(self) -> Dict[str, Any]:
        return {}


class PredictModule(nn.Module):
    """Wraps a model for serving: ``forward(batch: Dict[str, Tensor])`` runs ``predict_forward`` under
    ``torch.inference_mode()``; the state dict is the wrapped module's.

    Args:
        module: the model (put in eval mode).
        device: device of the inputs; when ``None`` the first call picks the current CUDA device, or CPU when
            CUDA is unavailable.
    """

    def __init__(self, module: nn.Module, device: Optional[str] = None) -> None:
        super().__init__()
        self._module: nn.Module = module
        self._device: Optional[torch.device] = torch.device(device) if device else None
        self._module.eval()

    @property
    def predict_module(self) -> nn.Module:
        return self._module

    @abc.abstractmethod
    def predict_forward(self, batch: Dict[str, torch.Tensor]) -> Any:
        """Convert the batch to the module's inputs and run it."""

    def forward(self, batch: Dict[str, torch.Tensor]) -> Any:
        if self._device is None:
            # TorchRec assumes CUDA here; on a CPU-only host that would crash, so fall back to CPU.
            self._device = (
                torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
            )
        with torch.inference_mode():
            return self.predict_forward(batch)

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        return self._module.state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)  # type: ignore


def quantize_dense(
    predict_module: PredictModule,
    dtype: torch.dtype,
    additional_embedding_module_type: List[Type[nn.Module]] = [],  # noqa: B006  (TorchRec's signature)
) -> nn.Module:
    """Cast the predict module's non-embedding children to fp16 (inputs cast by a pre-hook). Only fp16."""
    if dtype != torch.half:
        raise ValueError("quantize_dense: only torch.half is supported for dense layers, got " + str(dtype))
    module = predict_module.predict_module
    for name, child in list(module.named_children()):
        embedding = isinstance(child, (EmbeddingBagCollectionInterface, EmbeddingCollectionInterface)) or any(
            type(child) is c for c in additional_embedding_module_type
        ) or isinstance(child, (QuantEmbeddingBagCollection, QuantEmbeddingCollection))
        if not embedding:
            half = child.half()
            half.register_forward_pre_hook(quantize_feature)
            module._modules[name] = half
    return predict_module


def set_pruning_data(
    model: torch.nn.Module,
    tables_to_rows_post_pruning: Dict[str, int],
    module_types: Optional[List[Type[nn.Module]]] = None,
) -> torch.nn.Module:
    """Mark modules of ``module_types`` (default EBC and FP-EBC) so quantisation keeps only the first
    ``tables_to_rows_post_pruning[table]`` rows of each named table."""
    types = module_types if module_types is not None else [EmbeddingBagCollection, FeatureProcessedEmbeddingBagCollection]
    for _, m in model.named_modules():
        if type(m) in types:
            setattr(m, MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT, tables_to_rows_post_pruning)
    return model


def _set_submodule(model: nn.Module, fqn: str, module: nn.Module) -> None:
    parent_name, _, name = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    parent.register_module(name, module)


def quantize_inference_model(
    model: torch.nn.Module,
    quantization_mapping: Optional[Dict[str, Type[torch.nn.Module]]] = None,
    per_table_weight_dtype: Optional[Dict[str, torch.dtype]] = None,
    fp_weight_dtype: torch.dtype = DEFAULT_QUANTIZATION_DTYPE,
    quantization_dtype: torch.dtype = DEFAULT_QUANTIZATION_DTYPE,
    output_dtype: torch.dtype = torch.float,
) -> torch.nn.Module:
    """Quantise ``model`` in place: EBC → quantized EBC, EC → quantized EC (``quantization_mapping``, keyed by
    type name), FP-EBC → quantized FP-EBC (tables in ``fp_weight_dtype``). Kernels are registered (``tbes``).

    Returns the same ``model``.
    """
    mapping = quantization_mapping if quantization_mapping is not None else DEFAULT_QUANT_MAPPING
    spec_keys: List[Type[nn.Module]] = []
    swaps: Dict[Type[nn.Module], Type[nn.Module]] = {}
    fp_modules: List[Tuple[str, nn.Module]] = []
    for fqn, m in model.named_modules():
        typename = trim_torch_package_prefix_from_typename(torch.typename(m))
        if typename in mapping:
            spec_keys.append(type(m))
            swaps[type(m)] = mapping[typename]
        elif typename == FEATURE_PROCESSED_EBC_TYPE:
            fp_modules.append((fqn, m))
    for fqn, fp in fp_modules:
        quant_prep_enable_register_tbes(fp, [FeatureProcessedEmbeddingBagCollection])
        quant_prep_enable_cache_features_order(fp, [FeatureProcessedEmbeddingBagCollection])
        fp.qconfig = _qconfig(fp_weight_dtype, output_dtype, per_table_weight_dtype)
        quantized = QuantFeatureProcessedEmbeddingBagCollection.from_float(fp)  # type: ignore[arg-type]
        if fqn == "":
            return quantized
        _set_submodule(model, fqn, quantized)
    quant_prep_enable_register_tbes(model, list(swaps))
    quant_prep_enable_cache_features_order(model, [EmbeddingBagCollection, EmbeddingCollection])
    quantize_embeddings(
        model, dtype=quantization_dtype, inplace=True, additional_qconfig_spec_keys=spec_keys,
        additional_mapping=swaps, per_table_weight_dtype=per_table_weight_dtype, output_dtype=output_dtype,
    )
    return model


def get_table_to_weights_from_tbe(model: torch.nn.Module) -> Dict[str, List[Tuple[torch.Tensor, Optional[torch.Tensor]]]]:
    """``{table: (data, scale_shift)}`` views of every FBGEMM inference TBE's tables in ``model`` (hot-swap read)."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen

    out: Dict[str, Any] = {}
    for m in model.modules():
        if isinstance(m, IntNBitTableBatchedEmbeddingBagsCodegen):
            for spec, w in zip(m.embedding_specs, m.split_embedding_weights()):
                out[spec[0]] = w
    return out


def assign_weights_to_tbe(
    model: torch.nn.Module, table_to_weight: Dict[str, List[Tuple[torch.Tensor, Optional[torch.Tensor]]]]
) -> None:
    """Copy new quantized weights ``{table: (data, scale_shift)}`` into every TBE of ``model`` in place
    (hot swap: the model object, scripted or not, keeps serving with the new rows)."""
    from fbgemm_gpu.split_table_batched_embeddings_ops_inference import IntNBitTableBatchedEmbeddingBagsCodegen

    for m in model.modules():
        if isinstance(m, IntNBitTableBatchedEmbeddingBagsCodegen):
            missing = [spec[0] for spec in m.embedding_specs if spec[0] not in table_to_weight]
            if missing:
                raise KeyError("assign_weights_to_tbe: no weights for tables " + str(missing))
            m.assign_embedding_weights([table_to_weight[spec[0]] for spec in m.embedding_specs])


def _default_sharders() -> List[ModuleSharder[nn.Module]]:
    from recsys_lib.distributed.quant_embedding import QuantEmbeddingCollectionSharder
    from recsys_lib.distributed.quant_embeddingbag import (
        QuantEmbeddingBagCollectionSharder,
        QuantFeatureProcessedEmbeddingBagCollectionSharder,
    )

    # TorchRec's defaults: registered TBEs and split scale / bias state dicts (``DEFAULT_FUSED_PARAMS``)
    return [QuantEmbeddingBagCollectionSharder(fused_params=DEFAULT_FUSED_PARAMS),  # type: ignore[list-item]
            QuantEmbeddingCollectionSharder(fused_params=DEFAULT_FUSED_PARAMS),
            QuantFeatureProcessedEmbeddingBagCollectionSharder(fused_params=DEFAULT_FUSED_PARAMS)]


def _plan(model: nn.Module, world_size: int, compute_device: str, sharders: List[ModuleSharder[nn.Module]],
          device_memory_size: Optional[int], constraints: Optional[Dict[str, ParameterConstraints]],
          ddr_cap: Optional[int]) -> ShardingPlan:
    from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
    from recsys_lib.distributed.planner._hardware import Topology
    from recsys_lib.distributed.planner.planners import EmbeddingShardingPlanner
    from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
    from recsys_lib.distributed.planner.shard_estimators import EmbeddingPerfEstimator, EmbeddingStorageEstimator
    from recsys_lib.distributed.planner.storage_reservations import FixedPercentageStorageReservation
    from recsys_lib.distributed._core.enums import ShardingType

    if constraints is None:  # every table table-wise, as TorchRec defaults
        types = tuple(s.module_type for s in sharders)
        tables = [t for m in model.modules() if isinstance(m, types) and hasattr(m, "embedding_bags")
                  for t in m.embedding_bags]  # type: ignore[union-attr]
        tw = ShardingType.TABLE_WISE.value
        constraints = {t: ParameterConstraints(sharding_types=[tw], compute_kernels=[EmbeddingComputeKernel.QUANT.value])
                       for t in tables}
    hbm_cap = device_memory_size
    if hbm_cap is None and compute_device == "cuda":
        hbm_cap = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    topology = Topology(world_size=world_size, compute_device=compute_device, local_world_size=world_size,
                        hbm_cap=hbm_cap, ddr_cap=ddr_cap)
    estimators = [EmbeddingPerfEstimator(topology=topology, constraints=constraints, is_inference=True),
                  EmbeddingStorageEstimator(topology=topology, constraints=constraints)]
    planner = EmbeddingShardingPlanner(
        topology=topology, batch_size=1, constraints=constraints,
        enumerator=EmbeddingEnumerator(topology=topology, batch_size=1, constraints=constraints,
                                       estimator=estimators),
        storage_reservation=FixedPercentageStorageReservation(percentage=0.0),
    )
    return planner.plan(model, sharders)


def shard_quant_model(
    model: torch.nn.Module,
    world_size: int = 1,
    compute_device: str = "cuda",
    sharding_device: str = "meta",
    sharders: Optional[List[ModuleSharder[torch.nn.Module]]] = None,
    device_memory_size: Optional[int] = None,
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
    ddr_cap: Optional[int] = None,
    sharding_plan: Optional[ShardingPlan] = None,
) -> Tuple[torch.nn.Module, ShardingPlan]:
    """Shard a quantized model's embedding collections over ``world_size`` devices of this process.

    Replaces every quantized EBC / EC / FP-EBC in ``model`` (in place) by its sharded version; the result gives
    the unsharded model's outputs and can be fx-traced and TorchScript-ed. Without ``sharding_plan`` the planner
    places the tables (``constraints``; default: every table table-wise).

    Args:
        model: the quantized model (``quantize_inference_model``).
        world_size: number of devices ("ranks"); on CPU all are the CPU.
        compute_device: ``"cpu"`` or ``"cuda"`` (needs CUDA).
        sharding_device: accepted for TorchRec parity; shards are built where the quantized weights are (on
            meta for a model built on meta, else on ``compute_device``).
        sharders: default the quantized EBC, EC and FP-EBC sharders.
        device_memory_size / ddr_cap: per-device memory caps for the planner.
        constraints: per-table planner constraints.
        sharding_plan: a ready plan (shard offsets and sizes in ``(rows, embedding_dim)`` or in the bytes of the
            tables' state-dict weights, as planners size them).

    Returns:
        ``(sharded model, plan)``.
    """
    from recsys_lib.distributed.shard import _shard_modules

    if world_size < 1:
        raise ValueError("shard_quant_model: world_size must be >= 1, got " + str(world_size))
    if compute_device not in ("cpu", "cuda"):
        raise ValueError("shard_quant_model: compute_device must be 'cpu' or 'cuda', got " + repr(compute_device))
    if compute_device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("shard_quant_model: compute_device='cuda' needs CUDA, which is not available; "
                           "use compute_device='cpu'")
    sharders = list(sharders) if sharders else _default_sharders()
    plan = sharding_plan
    if plan is None:
        plan = _plan(model, world_size, compute_device, sharders, device_memory_size, constraints, ddr_cap)
    sharded = _shard_modules(module=model, env=ShardingEnv.from_local(world_size, 0),
                             device=torch.device(compute_device), plan=plan, sharders=sharders)
    return sharded, plan
