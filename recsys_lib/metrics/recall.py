"""Recall of thresholded predictions: ``TP / (TP + FN)`` with weighted counts, a positive prediction being
``p >= threshold`` (default 0.5); 0 when no positive label was seen. Keys ``recall-<task>|lifetime_recall``
and ``|window_recall``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.precision import compute_true_pos_sum
from recsys_lib.metrics.rec_metric import RecMetric


def compute_recall(num_true_positives: torch.Tensor, num_false_negitives: torch.Tensor) -> torch.Tensor:
    # The parameter keeps TorchRec's spelling, so keyword callers work unchanged.
    return safe_ratio(num_true_positives, num_true_positives + num_false_negitives)


def compute_false_neg_sum(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> torch.Tensor:
    negative = (predictions < threshold).to(torch.double)
    return (weights.to(torch.double) * labels.to(torch.double) * negative).sum(-1)


def get_recall_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, threshold: float = 0.5
) -> Dict[str, torch.Tensor]:
    return {
        "true_pos_sum": compute_true_pos_sum(labels, predictions, weights, threshold),
        "false_neg_sum": compute_false_neg_sum(labels, predictions, weights, threshold),
    }


class RecallMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, threshold: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._threshold = threshold
        self._add_sum_state("true_pos_sum")
        self._add_sum_state("false_neg_sum")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("RecallMetric", get_recall_states, predictions, labels, weights, self._threshold)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.RECALL, lambda s: compute_recall(s["true_pos_sum"], s["false_neg_sum"])
        )


class RecallMetric(RecMetric):
    _namespace = MetricNamespace.RECALL
    _computation_class = RecallMetricComputation
