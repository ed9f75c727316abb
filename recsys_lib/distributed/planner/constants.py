"""Planner constants (TorchRec's names and values) and the kernel bandwidth table.

Units: bytes, and bandwidths in **bytes per millisecond**, so every ``Perf`` term is in milliseconds.
The GPU numbers are TorchRec's defaults; ``compute_device="cpu"`` uses a measured
:class:`~recsys_lib.distributed.planner.calibration.CpuCalibration` instead (see ``Topology``).
"""

from typing import Optional

BATCH_SIZE: int = 512

HBM_CAP: int = 32 * 1024 * 1024 * 1024  # 32 GiB per accelerator
DDR_CAP: int = 128 * 1024 * 1024 * 1024  # 128 GiB per host share

HBM_MEM_BW: float = 963146416.128  # bytes/ms
DDR_MEM_BW: float = 54760833.024
HBM_TO_DDR_MEM_BW: float = 34359738.368
INTRA_NODE_BANDWIDTH: float = 644245094.4
CROSS_NODE_BANDWIDTH: float = 13421772.8

POOLING_FACTOR: float = 1.0
NUM_POOLINGS: float = 1.0
BIGINT_DTYPE: int = 8  # bytes of an id (int64)
LENGTH_DTYPE: int = 4  # bytes of a length (int32)

MIN_CW_DIM: int = 128
UVM_CACHING_RATIO: float = 0.2
KV_CACHING_RATIO: float = 0.2

BWD_COMPUTE_MULTIPLIER: float = 2
WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER: float = 1
WEIGHTED_KERNEL_MULTIPLIER: float = 1.1
DP_ELEMENTWISE_KERNELS_PERF_FACTOR: float = 9.22
HALF_BLOCK_PENALTY: float = 1.15
QUARTER_BLOCK_PENALTY: float = 1.75
BATCHED_COPY_PERF_FACTOR: float = 2.455
FULL_BLOCK_EMB_DIM: int = 128

# Share of the memory bandwidth each kernel reaches, relative to the memory it reads from.
# The dense kernel writes a full gradient and runs a separate optimizer, hence half speed.
_DENSE_KERNEL_SHARE: float = 0.5


def kernel_bw_lookup(
    compute_device: str,
    compute_kernel: str,
    hbm_mem_bw: float,
    ddr_mem_bw: float,
    hbm_to_ddr_mem_bw: float,
    caching_ratio: Optional[float] = None,
    prefetch_pipeline: bool = False,
) -> Optional[float]:
    """Effective lookup bandwidth (bytes/ms) of ``compute_kernel`` on ``compute_device``.

    Returns ``None`` for a kernel the planner cannot rate on that device (the enumerator then drops
    the option): key-value / SSD / virtual-table kernels, UVM kernels off CUDA.

    Example::

        >>> kernel_bw_lookup("cuda", "fused", 100.0, 10.0, 1.0)
        100.0
        >>> kernel_bw_lookup("cuda", "fused_uvm_caching", 100.0, 10.0, 1.0, caching_ratio=0.5)
        50.5
    """
    ratio = UVM_CACHING_RATIO if caching_ratio is None else caching_ratio
    # A prefetch pipeline hides the cache-miss traffic behind the previous batch.
    miss_bw = hbm_mem_bw if prefetch_pipeline else hbm_to_ddr_mem_bw
    caching_bw = ratio * hbm_mem_bw + (1.0 - ratio) * miss_bw
    accel = {
        "dense": hbm_mem_bw * _DENSE_KERNEL_SHARE,
        "fused": hbm_mem_bw,
        "fused_uvm": hbm_to_ddr_mem_bw,
        "fused_uvm_caching": caching_bw,
        "quant": hbm_mem_bw,
        "quant_uvm": hbm_to_ddr_mem_bw,
        "quant_uvm_caching": caching_bw,
    }
    host = {
        "dense": ddr_mem_bw * _DENSE_KERNEL_SHARE,
        "fused": ddr_mem_bw,
        "quant": ddr_mem_bw,
    }
    table = {"cuda": accel, "mtia": accel, "cpu": host}
    if compute_device not in table:
        raise ValueError(f"kernel_bw_lookup: unknown compute_device {compute_device!r}; expected cpu, cuda or mtia")
    return table[compute_device].get(compute_kernel)
