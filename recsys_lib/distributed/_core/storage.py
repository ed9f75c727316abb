"""``compute_storage_usage``: bytes a sharded parameter occupies, keyed by the storage it lands in."""

from typing import Dict

import torch

from recsys_lib.distributed._core.enums import ParameterStorage, StorageUsageType
from recsys_lib.distributed._core.sharder import get_tensor_size_bytes

# Kernels whose weights live in host memory (UVM) whatever the compute device.
_UVM_KERNELS = {
    StorageUsageType.BASE: ("fused_uvm", "fused_uvm_caching"),
    StorageUsageType.BASE_QUANT: ("quant_uvm", "quant_uvm_caching"),
}
# Device type → storage; unknown device types count as HBM. MTIA keeps quantized tables in DDR.
_DEVICE_STORAGE = {"cuda": ParameterStorage.HBM, "cpu": ParameterStorage.DDR, "mtia": ParameterStorage.HBM}
_QUANT_DEVICE_STORAGE = {"cuda": ParameterStorage.HBM, "cpu": ParameterStorage.DDR, "mtia": ParameterStorage.DDR}


def compute_storage_usage(
    tensor: torch.Tensor,
    compute_device_type: str,
    compute_kernel: str,
    storage_usage_type: StorageUsageType,
) -> Dict[str, int]:
    """Storage of one (shard of a) parameter: ``{"hbm" | "ddr": bytes}``.

    Quantized tables (``BASE_QUANT``) add 4 bytes per row (fp16 scale and bias).

    Args:
        tensor: the parameter, ``(R, D)``.
        compute_device_type: ``"cuda"``, ``"cpu"`` or ``"mtia"``.
        compute_kernel: the ``EmbeddingComputeKernel`` value; UVM kernels store in DDR.
        storage_usage_type: which sharder family asks.

    Example::

        compute_storage_usage(torch.zeros(10, 4), "cuda", "fused_uvm", StorageUsageType.BASE)  # {"ddr": 160}
    """
    num_bytes = get_tensor_size_bytes(tensor)
    if storage_usage_type == StorageUsageType.BASE_QUANT:
        num_bytes += tensor.shape[0] * 4
    if compute_kernel in _UVM_KERNELS.get(storage_usage_type, ()):
        return {ParameterStorage.DDR.value: num_bytes}
    table = _QUANT_DEVICE_STORAGE if storage_usage_type == StorageUsageType.BASE_QUANT else _DEVICE_STORAGE
    return {table.get(compute_device_type, ParameterStorage.HBM).value: num_bytes}
