"""RecMetricModule: ``update`` x N then ``compute`` for NE, AUC, calibration and CTR over 8 tasks (issue 17).

    .venv/bin/python benchmarks/run.py --case metrics --size quick
    .venv-compare/bin/python benchmarks/run.py --case metrics --size full --repeats 1 --compare torchrec
    .venv-compare/bin/python benchmarks/metrics.py --updates 100 --compare torchrec   # any number of updates

One op = a fresh module (built in ``setup``, untimed), ``updates`` calls of ``update`` with batch 8192 and
one ``compute``. Each metric uses TorchRec's default window (10M examples), so AUC keeps every example of
the run: its window buffer dominates. ``--threads`` of run.py applies to both libraries.

TorchRec 1.8.0's ``compute`` fails under torchmetrics >= 1.9 (it hands torchmetrics a frozen dataclass to
clone); ``_tolerate_frozen_reports`` makes torchmetrics leave such results as they are, for both libraries.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List

import torch

N_TASKS = 8
BATCH = 8192
N_DISTINCT_BATCHES = 8  # batches are cycled: generating 1000 x 8 x 8192 examples would dominate setup


@dataclass(frozen=True)
class Size:
    name: str
    updates: int


SIZES = {"quick": Size("quick", updates=50), "full": Size("full", updates=1000)}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _tolerate_frozen_reports() -> None:
    import torchmetrics.metric as tm_metric

    original = tm_metric.apply_to_collection
    if getattr(original, "_frozen_tolerant", False):
        return

    def tolerant(data: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(data, *args, **kwargs)
        except ValueError as e:
            if "frozen dataclass" not in str(e):
                raise
            return data

    tolerant._frozen_tolerant = True  # type: ignore[attr-defined]
    tm_metric.apply_to_collection = tolerant
    squeeze = tm_metric._squeeze_if_scalar
    tm_metric._squeeze_if_scalar = lambda data: data if isinstance(data, list) else squeeze(data)


def _is_torchrec(lib: Any) -> bool:
    return lib.KeyedJaggedTensor.__module__.startswith("torchrec")


def _modules(lib: Any) -> Any:
    if _is_torchrec(lib):
        from torchrec.metrics import metric_module, metrics_config
    else:
        from recsys_lib.metrics import metric_module, metrics_config
    return metric_module, metrics_config


def model_outs(n: int = N_DISTINCT_BATCHES) -> List[Dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    outs = []
    for _ in range(n):
        out = {}
        for t in range(N_TASKS):
            out[f"label_{t}"] = (torch.rand(BATCH, generator=g) < 0.3).float()
            out[f"prediction_{t}"] = torch.rand(BATCH, generator=g)
            out[f"weight_{t}"] = torch.rand(BATCH, generator=g) + 0.5
        outs.append(out)
    return outs


def make_module(lib: Any) -> Any:
    metric_module, cfg = _modules(lib)
    tasks = [cfg.RecTaskInfo(name=f"t{t}", label_name=f"label_{t}", prediction_name=f"prediction_{t}",
                             weight_name=f"weight_{t}") for t in range(N_TASKS)]
    metrics = {e: cfg.RecMetricDef(rec_task_indices=list(range(N_TASKS))) for e in
               (cfg.RecMetricEnum.NE, cfg.RecMetricEnum.AUC, cfg.RecMetricEnum.CALIBRATION, cfg.RecMetricEnum.CTR)}
    config = cfg.MetricsConfig(rec_tasks=tasks, rec_metrics=metrics, compute_interval_steps=10**9)
    return metric_module.generate_metric_module(
        metric_module.RecMetricModule, config, batch_size=BATCH, world_size=1, my_rank=0, state_metrics_mapping={},
        device=torch.device("cpu"),
    )


def run(module: Any, outs: List[Dict[str, torch.Tensor]], updates: int) -> Dict[str, Any]:
    for i in range(updates):
        module.update(outs[i % len(outs)])
    return dict(module.compute())


def build(lib: Any, size_name: str) -> List[Bench]:
    _tolerate_frozen_reports()
    size = SIZES[size_name]
    outs = model_outs()
    return [Bench(f"update_x{size.updates}+compute", lambda: make_module(lib), lambda m: run(m, outs, size.updates))]
