"""Preparing float modules for quantisation: module-attribute flags, table data types, weight quantisation.

TorchRec passes quantisation options as attributes set on the *float* module before ``from_float`` (the
``MODULE_ATTR_*`` names below); ``quant_prep_*`` set them on every module of given types.
"""

import copy
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib.modules.embedding_configs import DATA_TYPE_NUM_BITS, BaseEmbeddingConfig, QuantConfig
from recsys_lib.types import DataType
from recsys_lib.quant._rows import SUPPORTED_TYPES, quantize_rows

MODULE_ATTR_REGISTER_TBES_BOOL: str = "__register_tbes_in_named_modules"
MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: str = "__quant_state_dict_split_scale_bias"
MODULE_ATTR_ROW_ALIGNMENT_INT: str = "__register_row_alignment_in_named_modules"
MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT: str = "__emb_name_to_num_rows_post_pruning"
MODULE_ATTR_REMOVE_STBE_PADDING_BOOL: str = "__remove_stbe_padding"
MODULE_ATTR_USE_UNFLATTENED_LENGTHS_FOR_BATCHING: str = "__use_unflattened_lengths_for_batching"
MODULE_ATTR_USE_BATCHING_HINTED_OUTPUT: str = "__use_batching_hinted_output"
MODULE_ATTR_CACHE_FEATURES_ORDER: str = "__cache_features_order"
DEFAULT_ROW_ALIGNMENT: int = 16

# torch dtypes a QuantConfig's weight observer may name → stored table type (TorchRec's mapping).
_WEIGHT_DTYPES: Dict[torch.dtype, DataType] = {
    torch.qint8: DataType.INT8,
    torch.quint8: DataType.INT8,
    torch.int8: DataType.INT8,
    torch.quint4x2: DataType.INT4,
    torch.quint2x4: DataType.INT2,
    torch.float16: DataType.FP16,
    torch.float32: DataType.FP32,
}


def weight_dtype_to_data_type(dtype: torch.dtype, table: str) -> DataType:
    """``torch.qint8`` → ``INT8``, ``torch.quint4x2`` → ``INT4``, ``torch.quint2x4`` → ``INT2``, half, float."""
    if dtype not in _WEIGHT_DTYPES:
        raise ValueError(
            "table '" + table + "': weight dtype " + str(dtype) + " cannot be quantized to; use one of "
            + str(list(_WEIGHT_DTYPES))
        )
    return _WEIGHT_DTYPES[dtype]


def for_each_module_of_type_do(
    module: nn.Module, module_types: List[Type[nn.Module]], op: Callable[[nn.Module], None]
) -> None:
    """Call ``op`` on every submodule (``module`` included) that is an instance of one of ``module_types``."""
    for m in module.modules():
        if any(isinstance(m, t) for t in module_types):
            op(m)


def quant_prep_enable_quant_state_dict_split_scale_bias(module: nn.Module) -> None:
    """Quantized tables built from ``module`` expose ``weight_qscale`` / ``weight_qbias`` beside ``weight``."""
    setattr(module, MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS, True)


def quant_prep_enable_quant_state_dict_split_scale_bias_for_types(
    module: nn.Module, module_types: List[Type[nn.Module]]
) -> None:
    for_each_module_of_type_do(module, module_types, quant_prep_enable_quant_state_dict_split_scale_bias)


def quant_prep_enable_register_tbes(module: nn.Module, module_types: List[Type[nn.Module]]) -> None:
    """Quantized modules register their TBEs as ``tbes`` (their buffers then appear in the state dict)."""
    for_each_module_of_type_do(module, module_types, lambda m: setattr(m, MODULE_ATTR_REGISTER_TBES_BOOL, True))


def quant_prep_customize_row_alignment(
    module: nn.Module, module_types: List[Type[nn.Module]], row_alignment: int
) -> None:
    """Stored rows are padded to ``row_alignment`` bytes instead of 16."""
    for_each_module_of_type_do(
        module, module_types, lambda m: setattr(m, MODULE_ATTR_ROW_ALIGNMENT_INT, row_alignment)
    )


def quant_prep_enable_cache_features_order(module: nn.Module, module_types: List[Type[nn.Module]]) -> None:
    """Accepted for TorchRec compatibility; quantized lookups reorder input keys on every call regardless."""
    for_each_module_of_type_do(module, module_types, lambda m: setattr(m, MODULE_ATTR_CACHE_FEATURES_ORDER, True))


def quantize_state_dict(
    module: nn.Module,
    table_name_to_quantized_weights: Dict[str, Tuple[torch.Tensor, Optional[torch.Tensor]]],
    table_name_to_data_type: Dict[str, DataType],
    table_name_to_num_embeddings_post_pruning: Optional[Dict[str, int]] = None,
) -> torch.device:
    """Quantize every ``<...>.<table>.weight`` of ``module``'s state dict into ``table_name_to_quantized_weights``.

    Each entry becomes ``(data (R', D*bits/8) uint8, scale_shift (R', 4) uint8 or None)``, where ``R'`` is the
    table's post-pruning row count (the first ``R'`` rows are kept). Returns the device of the weights.
    """
    pruning = table_name_to_num_embeddings_post_pruning or {}
    device = torch.device("cpu")
    for key, tensor in module.state_dict().items():
        if not key.endswith(".weight"):
            continue
        table = key[: -len(".weight")].split(".")[-1]
        if table not in table_name_to_data_type:
            continue
        data_type = table_name_to_data_type[table]
        device = tensor.device
        rows = pruning.get(table, tensor.size(0))
        if rows > tensor.size(0):
            raise ValueError(
                "table '" + table + "': num_embeddings_post_pruning " + str(rows) + " exceeds its "
                + str(tensor.size(0)) + " rows"
            )
        if tensor.is_meta:  # shapes only: a module built on "meta" is materialised later
            n_bytes = tensor.size(1) * DATA_TYPE_NUM_BITS[data_type] // 8
            int_type = data_type in (DataType.INT8, DataType.INT4, DataType.INT2)
            table_name_to_quantized_weights[table] = (
                torch.empty(rows, n_bytes, dtype=torch.uint8, device="meta"),
                torch.empty(rows, 4, dtype=torch.uint8, device="meta") if int_type else None,
            )
            continue
        if tensor.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError("table '" + table + "': cannot quantize weights of dtype " + str(tensor.dtype))
        table_name_to_quantized_weights[table] = quantize_rows(tensor.detach()[:rows], data_type)
    return device


def update_embedding_configs(
    embedding_configs: Sequence[BaseEmbeddingConfig],
    quant_config: Union[QuantConfig, torch.ao.quantization.QConfig],
    tables_to_rows_post_pruning: Optional[Dict[str, int]] = None,
) -> List[BaseEmbeddingConfig]:
    """Copies of the float configs with the quantized ``data_type`` (``per_table_weight_dtype`` wins over the
    weight observer's dtype) and ``num_embeddings_post_pruning`` set. The float module's configs are untouched."""
    per_table = getattr(quant_config, "per_table_weight_dtype", None) or {}
    default_dtype = quant_config.weight().dtype
    pruning = tables_to_rows_post_pruning or {}
    out: List[BaseEmbeddingConfig] = []
    for c in embedding_configs:
        q = copy.copy(c)
        q.feature_names = list(c.feature_names)
        q.data_type = weight_dtype_to_data_type(per_table.get(c.name, default_dtype), c.name)
        if q.data_type not in SUPPORTED_TYPES:
            raise ValueError("table '" + c.name + "': cannot quantize to " + str(q.data_type))
        if c.name in pruning:
            q.num_embeddings_post_pruning = int(pruning[c.name])
        out.append(q)
    return out


def quant_options(module: nn.Module) -> Dict[str, object]:
    """The ``from_float`` keyword options a float module carries as ``MODULE_ATTR_*`` attributes."""
    return {
        "register_tbes": bool(getattr(module, MODULE_ATTR_REGISTER_TBES_BOOL, False)),
        "quant_state_dict_split_scale_bias": bool(getattr(module, MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS, False)),
        "row_alignment": int(getattr(module, MODULE_ATTR_ROW_ALIGNMENT_INT, DEFAULT_ROW_ALIGNMENT)),
        "cache_features_order": bool(getattr(module, MODULE_ATTR_CACHE_FEATURES_ORDER, False)),
    }


def module_qconfig(module: nn.Module, owner: str) -> QuantConfig:
    """The module's ``qconfig`` (set by ``quantize_dynamic`` or by hand); a clear error if absent."""
    qconfig = getattr(module, "qconfig", None)
    if qconfig is None:
        raise ValueError(
            owner + ".from_float: the float module has no qconfig; set module.qconfig = QuantConfig(...) or use "
            "recsys_lib.inference.modules.quantize_embeddings"
        )
    return qconfig


def post_pruning_rows(module: nn.Module) -> Dict[str, int]:
    return dict(getattr(module, MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT, {}) or {})
