"""Accuracy of thresholded predictions: ``sum(w * [1{p >= threshold} == label]) / sum(w)`` (0 when no weight
was seen; labels are 0/1). ``threshold`` defaults to 0.5. Keys ``accuracy-<task>|lifetime_accuracy``,
``|window_accuracy``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_accuracy(accuracy_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(accuracy_sum, weighted_num_samples)


def compute_accuracy_sum(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    hit = ((predictions >= threshold).to(torch.double) == labels.to(torch.double)).to(torch.double)
    return (weights.to(torch.double) * hit).sum(-1)


def get_accuracy_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> Dict[str, torch.Tensor]:
    return {
        "accuracy_sum": compute_accuracy_sum(labels, predictions, weights, threshold),
        "weighted_num_samples": weights.to(torch.double).sum(-1),
    }


class AccuracyMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._threshold = threshold
        self._add_sum_state("accuracy_sum")
        self._add_sum_state("weighted_num_samples")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("AccuracyMetric", get_accuracy_states, predictions, labels, weights, self._threshold)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.ACCURACY, lambda s: compute_accuracy(s["accuracy_sum"], s["weighted_num_samples"])
        )


class AccuracyMetric(RecMetric):
    _namespace = MetricNamespace.ACCURACY
    _computation_class = AccuracyMetricComputation
