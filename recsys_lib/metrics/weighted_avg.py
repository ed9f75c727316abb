"""Weighted average prediction ``sum(w * prediction) / sum(w)`` (0 when no weight was seen).
Keys ``weighted_avg-<task>|lifetime_weighted_avg`` and ``|window_weighted_avg``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_weighted_avg(weighted_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(weighted_sum, weighted_num_samples)


def get_mean(value_sum: torch.Tensor, num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(value_sum, num_samples)


def get_weighted_avg_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor
) -> Dict[str, torch.Tensor]:
    w = weights.to(torch.double)
    return {"weighted_sum": (w * predictions.to(torch.double)).sum(-1), "weighted_num_samples": w.sum(-1)}


class WeightedAvgMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("weighted_sum")
        self._add_sum_state("weighted_num_samples")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("WeightedAvgMetric", get_weighted_avg_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.WEIGHTED_AVG, lambda s: compute_weighted_avg(s["weighted_sum"], s["weighted_num_samples"])
        )


class WeightedAvgMetric(RecMetric):
    _namespace = MetricNamespace.WEIGHTED_AVG
    _computation_class = WeightedAvgMetricComputation
