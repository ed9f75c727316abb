"""Mean absolute error ``sum(w * |label - prediction|) / sum(w)`` (0 when no weight was seen).
Keys ``mae-<task>|lifetime_mae`` and ``|window_mae``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_mae(error_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(error_sum, weighted_num_samples)


def compute_error_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return (weights.to(torch.double) * (labels.to(torch.double) - predictions.to(torch.double)).abs()).sum(-1)


def get_mae_states(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    return {
        "error_sum": compute_error_sum(labels, predictions, weights),
        "weighted_num_samples": weights.to(torch.double).sum(-1),
    }


class MAEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("error_sum")
        self._add_sum_state("weighted_num_samples")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("MAEMetric", get_mae_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(MetricName.MAE, lambda s: compute_mae(s["error_sum"], s["weighted_num_samples"]))


class MAEMetric(RecMetric):
    _namespace = MetricNamespace.MAE
    _computation_class = MAEMetricComputation
