"""Precision of thresholded predictions: ``TP / (TP + FP)`` with weighted counts, a positive prediction being
``p >= threshold`` (default 0.5); 0 when nothing was predicted positive. Keys
``precision-<task>|lifetime_precision`` and ``|window_precision``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_precision(num_true_positives: torch.Tensor, num_false_positives: torch.Tensor) -> torch.Tensor:
    return safe_ratio(num_true_positives, num_true_positives + num_false_positives)


def compute_true_pos_sum(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    positive = (predictions >= threshold).to(torch.double)
    return (weights.to(torch.double) * labels.to(torch.double) * positive).sum(-1)


def compute_false_pos_sum(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    positive = (predictions >= threshold).to(torch.double)
    return (weights.to(torch.double) * (1.0 - labels.to(torch.double)) * positive).sum(-1)


def get_precision_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> Dict[str, torch.Tensor]:
    return {
        "true_pos_sum": compute_true_pos_sum(labels, predictions, weights, threshold),
        "false_pos_sum": compute_false_pos_sum(labels, predictions, weights, threshold),
    }


class PrecisionMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._threshold = threshold
        self._add_sum_state("true_pos_sum")
        self._add_sum_state("false_pos_sum")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("PrecisionMetric", get_precision_states, predictions, labels, weights, self._threshold)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.PRECISION, lambda s: compute_precision(s["true_pos_sum"], s["false_pos_sum"])
        )


class PrecisionMetric(RecMetric):
    _namespace = MetricNamespace.PRECISION
    _computation_class = PrecisionMetricComputation
