"""Benchmark cases: each module exposes ``SIZES`` and ``build(lib, size) -> list[Bench]``.

A case is imported only when it runs, so one case's optional dependencies never break another. Add yours here.
"""

import importlib
from types import ModuleType

CASES = {
    "kjt": "benchmarks.cases.kjt",  # KJT/JT/KT micro-ops (issue 2)
    "ebc": "benchmarks.cases.ebc",  # EmbeddingBagCollection forward/backward (issue 3)
    "tbe_kernel": "benchmarks.cases.tbe_kernel",  # BatchedFusedEmbeddingBag vs raw TBE train step (issue 4)
    "datasets": "benchmarks.cases.datasets",  # Criteo TSV → npy, npy range reads, in-memory batches (issue 7)
    "dmp": "benchmarks.cases.dmp",  # DMP train step, TW/RW at world size 1 and 2, fused row-wise Adagrad (issues 4, 5)
    "planner": "benchmarks.cases.planner",  # EmbeddingShardingPlanner wall time (issue 6; full table: benchmarks/planner.py)
    "mc_remap": "benchmarks.cases.mc_remap",  # managed-collision remap: MCH searchsorted, hash-ZCH lookup (issue 15)
    "metrics": "benchmarks.cases.metrics",  # RecMetricModule update x N + compute, NE/AUC/calibration/CTR (issue 17)
}


def load_case(name: str) -> ModuleType:
    return importlib.import_module(CASES[name])
