"""Weighted averages of labels and predictions:

    label_average      = sum(w * y) / sum(w)
    prediction_average = sum(w * p) / sum(w)        (0 when no weight was seen)

Keys ``average-<task>|{lifetime,window}_label_average`` and ``|{lifetime,window}_prediction_average``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def compute_average(weighted_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(weighted_sum, weighted_num_samples)


def get_average_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor
) -> Dict[str, torch.Tensor]:
    w = weights.to(torch.double)
    return {
        "label_sum": (w * labels.to(torch.double)).sum(-1),
        "prediction_sum": (w * predictions.to(torch.double)).sum(-1),
        "weighted_num_samples": w.sum(-1),
    }


class AverageMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("label_sum", "prediction_sum", "weighted_num_samples"):
            self._add_sum_state(name)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("AverageMetric", get_average_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.LABEL_AVERAGE, lambda s: compute_average(s["label_sum"], s["weighted_num_samples"])
        ) + self._lifetime_and_window(
            MetricName.PREDICTION_AVERAGE, lambda s: compute_average(s["prediction_sum"], s["weighted_num_samples"])
        )


class AverageMetric(RecMetric):
    _namespace = MetricNamespace.AVERAGE
    _computation_class = AverageMetricComputation
