"""``MetricStateSnapshot``: a detached copy of every rec-metric state (and the throughput metric), taken on
the update thread so that the compute thread can all-gather and compute without touching live states.

``metric_states`` is keyed ``"<metric index>.<computation index>.<state name>"``; list states (AUC's
buffers) are concatenated into one tensor first, which is all a compute needs.
"""

import copy
from typing import Any, Dict, Optional

import torch

from recsys_lib.metrics.rec_metric import RecMetricList
from recsys_lib.metrics.throughput import ThroughputMetric


def _detached(value: Any) -> Any:
    if isinstance(value, list):
        return [torch.cat([t.detach() for t in value], dim=-1)] if value else []  # chunks join on the example axis
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


class MetricStateSnapshot:
    def __init__(self, metric_states: Dict[str, Any], throughput_metric: Optional[ThroughputMetric]) -> None:
        self.metric_states = metric_states
        self.throughput_metric = throughput_metric

    @classmethod
    def from_metrics(
        cls, rec_metrics: RecMetricList, throughput_metric: Optional[ThroughputMetric] = None
    ) -> "MetricStateSnapshot":
        """Copies the states of ``rec_metrics`` (held-back fused updates applied first) and the throughput
        metric; later updates do not change the snapshot."""
        states: Dict[str, Any] = {}
        for i, metric in enumerate(rec_metrics.rec_metrics):
            metric._flush()
            for j, computation in enumerate(metric._metrics_computations):
                for name in computation._defaults:
                    states[f"{i}.{j}.{name}"] = _detached(getattr(computation, name))
                states[f"{i}.{j}._extra_state"] = copy.deepcopy(computation.get_extra_state())
        return cls(states, copy.deepcopy(throughput_metric) if throughput_metric is not None else None)
