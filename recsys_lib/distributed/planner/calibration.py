"""CPU calibration: measure FBGEMM's CPU table-batched-embedding kernels and gloo collectives on this
machine and turn them into the bandwidths the planner's perf model uses.

TorchRec's default bandwidths describe a V100-era GPU box; on ``compute_device="cpu"`` they make every
estimate meaningless. ``calibrate()`` times, on the current machine:

========================  =====================================================================
constant                  how it is measured
========================  =====================================================================
``fused_kernel_bw``       ``SplitTableBatchedEmbeddingBagsCodegen`` (HOST, EXACT_SGD) forward:
                          ``ids * D * 4 bytes / seconds`` (bytes/ms)
``dense_kernel_bw``       ``DenseTableBatchedEmbeddingBagsCodegen`` forward, same formula
``bwd_compute_multiplier``fused (backward + optimizer) time / forward time
``intra_host_bw``         gloo ``all_to_all_single`` between 2 local processes: bytes sent per
                          rank / seconds (bytes/ms)
``inter_host_bw``         not measurable on one host: ``min(intra_host_bw, 10 Gbit/s)`` (assumed
                          Ethernet between hosts); override it if you know better
========================  =====================================================================

Usage::

    python -m recsys_lib.distributed.planner.calibration --out cpu_calibration.json
    topo = Topology(world_size=2, compute_device="cpu").set_calibration("cpu_calibration.json")

``default_cpu_calibration()`` returns the values measured on the project's reference machine (2-core
CPU box, torch 2.13 CPU, fbgemm-gpu-cpu 1.8.0); ``Topology(compute_device="cpu")`` uses them unless
given another calibration.
"""

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import torch

_TEN_GBIT_BYTES_PER_MS: float = 10e9 / 8 / 1e3


@dataclass(frozen=True)
class CpuCalibration:
    """Measured CPU constants (bandwidths in bytes/ms)."""

    fused_kernel_bw: float
    dense_kernel_bw: float
    bwd_compute_multiplier: float
    intra_host_bw: float
    inter_host_bw: float
    info: Dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("fused_kernel_bw", "dense_kernel_bw", "bwd_compute_multiplier", "intra_host_bw", "inter_host_bw"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"CpuCalibration.{name} must be a positive number, got {value!r}")

    def kernel_bw(self, compute_kernel: str) -> Optional[float]:
        """Bandwidth of a CPU kernel; ``None`` for kernels that do not run on CPU (UVM, key-value...)."""
        table = {"fused": self.fused_kernel_bw, "dense": self.dense_kernel_bw, "quant": self.fused_kernel_bw}
        return table.get(compute_kernel)

    def save(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)

    @staticmethod
    def load(path: str) -> "CpuCalibration":
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a JSON object of CpuCalibration fields, got {type(data).__name__}")
        known = {"fused_kernel_bw", "dense_kernel_bw", "bwd_compute_multiplier", "intra_host_bw", "inter_host_bw", "info"}
        unknown = sorted(set(data) - known)
        missing = sorted(known - {"info"} - set(data))
        if unknown or missing:
            raise ValueError(f"{path}: not a CpuCalibration file (unknown keys {unknown}, missing keys {missing})")
        return CpuCalibration(**data)


def default_cpu_calibration() -> CpuCalibration:
    """Constants measured by ``calibrate()`` on the reference machine (see the module docstring)."""
    return CpuCalibration(
        fused_kernel_bw=1.55e6,
        dense_kernel_bw=2.66e6,
        bwd_compute_multiplier=27.9,
        intra_host_bw=5.96e5,
        inter_host_bw=5.96e5,
        info={
            "machine": "reference 2-core CPU box, 2 threads",
            "torch": "2.13.0+cpu",
            "fbgemm_gpu": "1.8.0",
            "shape": "T=4 R=100000 D=64 B=512 L~20",
            "date": "2026-11-28",
        },
    )


def _inputs(num_tables: int, rows: int, batch: int, pooling: int, seed: int) -> Any:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, 2 * pooling + 1, (num_tables * batch,), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths, 0)])
    indices = torch.randint(0, rows, (int(lengths.sum()),), generator=g)
    return indices, offsets


def _time(fn: Any, repeats: int) -> float:
    fn()  # warm up
    samples: List[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def measure_kernels(
    num_tables: int = 4, rows: int = 100_000, dim: int = 64, batch: int = 512, pooling: int = 20, repeats: int = 10
) -> Dict[str, float]:
    """Times FBGEMM's fused and dense CPU TBEs; returns bandwidths (bytes/ms) and the backward multiplier."""
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        DenseTableBatchedEmbeddingBagsCodegen,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    indices, offsets = _inputs(num_tables, rows, batch, pooling, seed=0)
    looked_up_bytes = float(indices.numel() * dim * 4)
    fused = SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[(rows, dim, EmbeddingLocation.HOST, ComputeDevice.CPU)] * num_tables,
        optimizer=EmbOptimType.EXACT_SGD,
        learning_rate=0.01,
        device=torch.device("cpu"),
    )
    dense = DenseTableBatchedEmbeddingBagsCodegen([(rows, dim)] * num_tables, use_cpu=True)

    def fused_fwd() -> None:
        with torch.no_grad():
            fused(indices, offsets)

    def fused_train() -> None:
        fused(indices, offsets).sum().backward()

    def dense_fwd() -> None:
        with torch.no_grad():
            dense(indices, offsets)

    t_fused = _time(fused_fwd, repeats)
    t_fused_train = _time(fused_train, repeats)
    t_dense = _time(dense_fwd, repeats)
    return {
        "fused_kernel_bw": looked_up_bytes / (t_fused * 1e3),
        "dense_kernel_bw": looked_up_bytes / (t_dense * 1e3),
        "bwd_compute_multiplier": max(t_fused_train - t_fused, 1e-9) / t_fused,
    }


def _a2a_worker(rank: int, world_size: int, nbytes: int, repeats: int) -> float:
    import torch.distributed as dist

    numel = max(nbytes // 4 // world_size * world_size, world_size)
    send = torch.ones(numel, dtype=torch.float32)
    recv = torch.empty_like(send)
    samples: List[float] = []
    for i in range(repeats + 1):
        dist.barrier()
        t0 = time.perf_counter()
        dist.all_to_all_single(recv, send)
        if i > 0:
            samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def measure_comms(world_size: int = 2, nbytes: int = 32 * 1024 * 1024, repeats: int = 5) -> Dict[str, float]:
    """Times a gloo ``all_to_all_single`` of ``nbytes`` per rank among local processes (bytes/ms)."""
    from recsys_lib.distributed.test_utils.multi_process import run_multiprocess

    seconds = max(run_multiprocess(_a2a_worker, world_size, nbytes, repeats))
    intra = nbytes / (seconds * 1e3)
    return {"intra_host_bw": intra, "inter_host_bw": min(intra, _TEN_GBIT_BYTES_PER_MS)}


def calibrate(
    num_tables: int = 4,
    rows: int = 100_000,
    dim: int = 64,
    batch: int = 512,
    pooling: int = 20,
    repeats: int = 10,
    comm_world_size: int = 2,
    comm_bytes: int = 32 * 1024 * 1024,
) -> CpuCalibration:
    """Measures this machine (about 10-30 s on 2 cores) and returns a :class:`CpuCalibration`."""
    import fbgemm_gpu

    values: Dict[str, Any] = {}
    values.update(measure_kernels(num_tables, rows, dim, batch, pooling, repeats))
    values.update(measure_comms(comm_world_size, comm_bytes))
    values["info"] = {
        "torch": torch.__version__,
        "fbgemm_gpu": str(getattr(fbgemm_gpu, "__version__", "unknown")),
        "threads": str(torch.get_num_threads()),
        "shape": f"T={num_tables} R={rows} D={dim} B={batch} L~{pooling}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    return CpuCalibration(**values)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description="Measure CPU planner constants and write them as JSON.")
    parser.add_argument("--out", required=True, help="JSON file to write (load with Topology(...).set_calibration(path))")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    cal = calibrate(repeats=args.repeats)
    cal.save(args.out)
    print(json.dumps(asdict(cal), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
