"""Planner constants (TorchRec's names and values) and the kernel bandwidth table.

Units: bytes, and bandwidths in **bytes per millisecond**, so every ``Perf`` term is in milliseconds.
The GPU numbers are TorchRec's defaults; ``compute_device="cpu"`` uses a measured
:class:`~recsys_lib.distributed.planner.calibration.CpuCalibration` instead (see ``Topology``).
"""

from typing import Optional

BATCH_SIZE: int = 512

HBM_CAP: int = 32 * 1024 * 1024 * 1024  # 32 GiB per accelerator
DDR_CAP: int = 128 * 1024 * 1024 * 1024  # 128 GiB per host share
SSD_CAP: int = 2048 * 1024 * 1024 * 1024  # 2 TiB per rank
HUNDRED_GB: int = 100 * 1024 * 1024 * 1024  # rounding unit of topology hashes
MAX_SIZE: int = (1 << 63) - 1  # "no limit" sentinel of the planner's searches
DEFAULT_PERF_ESTIMATOR: str = "default_estimator"  # key of the built-in perf estimator

HBM_MEM_BW: float = 963146416.128  # bytes/ms
DDR_MEM_BW: float = 54760833.024
HBM_TO_DDR_MEM_BW: float = 34359738.368
SSD_MEM_BW: float = 104857.6
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
# The dense kernel writes a full gradient and runs a separate optimizer, hence half speed; UVM reads
# go over PCIe in small rows and reach a tenth of the host-to-device bandwidth.
_DENSE_KERNEL_SHARE: float = 0.5
_UVM_SLOWDOWN: float = 10.0


def kernel_bw_lookup(
    compute_device: str,
    compute_kernel: str,
    hbm_mem_bw: float,
    ddr_mem_bw: float,
    hbm_to_ddr_mem_bw: float,
    caching_ratio: Optional[float] = None,
    prefetch_pipeline: bool = False,
    ssd_mem_bw: float = SSD_MEM_BW,
) -> Optional[float]:
    """Effective lookup bandwidth (bytes/ms) of ``compute_kernel`` on ``compute_device``.

    Returns ``None`` for a kernel the planner cannot rate on that device (the enumerator then drops
    the option), e.g. UVM kernels off CUDA.

    ==================  =================================================================
    kernel              cuda bandwidth (cpu / mtia: only dense, fused, quant, on DDR / HBM)
    ==================  =================================================================
    dense               hbm / 2
    fused, quant        hbm
    *_uvm               hbm_to_ddr / 10
    *_uvm_caching       (r * hbm + (1 - r) * hbm_to_ddr) / 10, r = caching_ratio (0.2);
                        fused_uvm_caching under a prefetch pipeline: hbm
    key_value           ssd
    *_virtual_table     hbm_to_ddr
    ==================  =================================================================

    Example::

        >>> kernel_bw_lookup("cuda", "fused", 100.0, 10.0, 1.0)
        100.0
        >>> kernel_bw_lookup("cuda", "fused_uvm_caching", 100.0, 10.0, 1.0, caching_ratio=0.5)
        5.05
    """
    if compute_device not in ("cuda", "cpu", "mtia"):
        raise ValueError(f"kernel_bw_lookup: unknown compute_device {compute_device!r}; expected cpu, cuda or mtia")
    if compute_device == "cpu":
        mem = ddr_mem_bw
    else:
        mem = hbm_mem_bw
    if compute_kernel == "dense":
        return mem * _DENSE_KERNEL_SHARE
    if compute_kernel in ("fused", "quant"):
        return mem
    if compute_device != "cuda":
        return None
    ratio = UVM_CACHING_RATIO if caching_ratio is None else caching_ratio
    if compute_kernel in ("fused_uvm", "quant_uvm"):
        return hbm_to_ddr_mem_bw / _UVM_SLOWDOWN
    if compute_kernel == "fused_uvm_caching" and prefetch_pipeline:
        # the prefetch of the next batch hides the cache misses
        return hbm_mem_bw
    if compute_kernel in ("fused_uvm_caching", "quant_uvm_caching"):
        return (ratio * hbm_mem_bw + (1.0 - ratio) * hbm_to_ddr_mem_bw) / _UVM_SLOWDOWN
    if compute_kernel == "key_value":
        return ssd_mem_bw
    if compute_kernel in ("ssd_virtual_table", "dram_virtual_table"):
        return hbm_to_ddr_mem_bw
    return None
