"""What the estimators need from a sharder, as a plain value: ``SharderData``.

The planner reads a sharder's fused params (cache load factor, prefetch pipeline, optimizer), the
element sizes of its quantized collectives and how it counts storage; ``build_sharder_data`` copies
those out so the estimators never hold a sharder.
"""

from recsys_lib._public import public_at
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any, Dict, Tuple

import torch


@unique
class StorageUsageType(Enum):
    """How a sharder counts a table's bytes (the sharder base class it derives from).

    ``BASE``: the table's bytes (UVM kernels in DDR). ``BASE_QUANT``: quantized bytes plus 4 per row
    (scale and bias). ``DEFAULT``: the plain tensor bytes in HBM (accelerators) or DDR (cpu).
    """

    BASE_QUANT = "BaseQuantEmbeddingSharder"
    BASE = "BaseEmbeddingSharder"
    DEFAULT = "ModuleSharder"


@dataclass
@public_at("recsys_lib.distributed.planner.types")
class SharderData:
    """A sharder's planner-relevant values.

    Args:
        fused_params: a copy of the sharder's ``fused_params`` (``{}`` if none).
        qcomm_dtype_sizes: ``{CommOp name: (fwd bytes, bwd bytes)}`` of its quantized collectives.
        storage_usage_type: how it counts storage.
    """

    fused_params: Dict[str, Any]
    qcomm_dtype_sizes: Dict[str, Tuple[float, float]]
    storage_usage_type: StorageUsageType


_UVM_KERNELS = ("fused_uvm", "fused_uvm_caching", "quant_uvm", "quant_uvm_caching")


def storage_usage_of(
    sharder_data: SharderData, tensor: torch.Tensor, compute_device_type: str, compute_kernel: str
) -> Dict[str, int]:
    """``{"hbm" | "ddr": bytes}`` of ``tensor`` (a shard, may be on ``meta``) as its sharder counts it."""
    nbytes = tensor.numel() * tensor.element_size()
    kind = sharder_data.storage_usage_type
    if kind == StorageUsageType.BASE_QUANT:
        nbytes += int(tensor.shape[0]) * 4
    in_ddr = compute_device_type == "cpu" or (kind != StorageUsageType.DEFAULT and compute_kernel in _UVM_KERNELS)
    return {"ddr" if in_ddr else "hbm": int(nbytes)}
