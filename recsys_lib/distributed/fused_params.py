"""Private switches carried inside ``fused_params`` and the helpers that read or strip them.

``fused_params`` is the dict a sharder hands to every table-batched-embedding (TBE) kernel: FBGEMM
keyword arguments (``optimizer``, ``learning_rate``, ``eps``, ...) mixed with a few recsys_lib-level
switches whose keys start with ``"__register_"``. The switches are read here and removed by
:func:`tbe_fused_params` before the dict reaches FBGEMM.

Example::

    fp = {"learning_rate": 0.1, FUSED_PARAM_REGISTER_TBE_BOOL: True}
    assert is_fused_param_register_tbe(fp)
    assert tbe_fused_params(fp) == {"learning_rate": 0.1}
"""

from typing import Any, Dict, Iterable, Optional

import torch
from torch import nn

FUSED_PARAM_REGISTER_TBE_BOOL: str = "__register_tbes_in_named_modules"
FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS: str = "__register_quant_state_dict_split_scale_bias"
FUSED_PARAM_TBE_ROW_ALIGNMENT: str = "__register_tbe_row_alignment"
FUSED_PARAM_BOUNDS_CHECK_MODE: str = "__register_tbe_bounds_check_mode"
FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP: str = "__register_lengths_to_offsets_lookup"
FUSED_PARAM_IS_SSD_TABLE: str = "__register_is_ssd_table"
FUSED_PARAM_SSD_TABLE_LIST: str = "__register_ssd_table_list"
# FBGEMM TBE arguments (not private): dtypes of the kernel's indices / offsets.
FUSED_PARAM_EMBEDDING_TABLE_INDEX_TYPE: str = "embedding_table_index_type"
FUSED_PARAM_EMBEDDING_TABLE_OFFSET_TYPE: str = "embedding_table_offset_type"

# Every private key; none of them is an FBGEMM argument.
_PRIVATE_KEYS = (
    FUSED_PARAM_REGISTER_TBE_BOOL,
    FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS,
    FUSED_PARAM_TBE_ROW_ALIGNMENT,
    FUSED_PARAM_BOUNDS_CHECK_MODE,
    FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP,
    FUSED_PARAM_IS_SSD_TABLE,
    FUSED_PARAM_SSD_TABLE_LIST,
)


class TBEToRegisterMixIn:
    """A module owning inference TBEs that should show up in ``named_modules`` (see
    :data:`FUSED_PARAM_REGISTER_TBE_BOOL`); returns ``{tbe: grouped_config}``."""

    def get_tbes_to_register(self) -> Dict[nn.Module, Any]:
        raise NotImplementedError(f"{type(self).__name__} must implement get_tbes_to_register()")


def get_tbes_to_register_from_iterable(iterable: Iterable[Any]) -> Dict[nn.Module, Any]:
    """Merges :meth:`TBEToRegisterMixIn.get_tbes_to_register` over every item that implements it."""
    tbes: Dict[nn.Module, Any] = {}
    for item in iterable:
        if isinstance(item, TBEToRegisterMixIn):
            tbes.update(item.get_tbes_to_register())
    return tbes


def is_fused_param_register_tbe(fused_params: Optional[Dict[str, Any]]) -> bool:
    """True when the TBEs should be registered as named submodules (default False)."""
    return bool(fused_params is not None and fused_params.get(FUSED_PARAM_REGISTER_TBE_BOOL, False))


def is_fused_param_quant_state_dict_split_scale_bias(fused_params: Optional[Dict[str, Any]]) -> bool:
    """True when quantized state dicts store weights, scales and biases as separate entries (default False)."""
    return bool(
        fused_params is not None and fused_params.get(FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS, False)
    )


def get_fused_param_tbe_row_alignment(fused_params: Optional[Dict[str, Any]]) -> Optional[int]:
    """Row alignment (bytes) for inference TBEs, or None for FBGEMM's default."""
    if fused_params is None or FUSED_PARAM_TBE_ROW_ALIGNMENT not in fused_params:
        return None
    value = fused_params[FUSED_PARAM_TBE_ROW_ALIGNMENT]
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"fused_params[{FUSED_PARAM_TBE_ROW_ALIGNMENT!r}] must be a positive int, got {value!r}")
    return value


def fused_param_bounds_check_mode(fused_params: Optional[Dict[str, Any]]) -> Optional[Any]:
    """The FBGEMM ``BoundsCheckMode`` requested for inference TBEs, or None."""
    if fused_params is None:
        return None
    return fused_params.get(FUSED_PARAM_BOUNDS_CHECK_MODE, None)


def fused_param_lengths_to_offsets_lookup(fused_params: Optional[Dict[str, Any]]) -> bool:
    """True when inference lookups should convert lengths to offsets inside the TBE call (default False)."""
    return bool(fused_params is not None and fused_params.get(FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP, False))


def tbe_fused_params(fused_params: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """A copy of ``fused_params`` without the private ``"__register_*"`` keys (None stays None)."""
    if fused_params is None:
        return None
    return {k: v for k, v in fused_params.items() if k not in _PRIVATE_KEYS}


def get_embedding_table_index_type(fused_params: Optional[Dict[str, Any]]) -> torch.dtype:
    """Index dtype the TBE kernels use (``fused_params["embedding_table_index_type"]``, default ``torch.int64``)."""
    if fused_params is None or FUSED_PARAM_EMBEDDING_TABLE_INDEX_TYPE not in fused_params:
        return torch.int64
    return fused_params[FUSED_PARAM_EMBEDDING_TABLE_INDEX_TYPE]


def get_embedding_table_offset_type(fused_params: Optional[Dict[str, Any]]) -> torch.dtype:
    """Offset dtype the TBE kernels use (``fused_params["embedding_table_offset_type"]``, default ``torch.int64``)."""
    if fused_params is None or FUSED_PARAM_EMBEDDING_TABLE_OFFSET_TYPE not in fused_params:
        return torch.int64
    return fused_params[FUSED_PARAM_EMBEDDING_TABLE_OFFSET_TYPE]
