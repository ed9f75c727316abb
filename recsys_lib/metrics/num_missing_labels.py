"""Weighted count of missing (NaN) labels ``sum(w * [y is NaN])``, lifetime and window.

Key ``num_missing_labels-<task>|{lifetime,window}_num_missing_labels``; state ``missing_label_sum``.
"""

from typing import Dict, Optional

import torch

from recsys_lib.metrics._single_sum import SingleSumComputation, weighted_sum_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def _summand(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weights * torch.isnan(labels).to(torch.double)


def compute_missing_label_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` weighted count of missing (NaN) labels ``sum(w * [y is NaN])`` of ``(n_tasks, B)`` inputs."""
    return _summand(labels.to(torch.double), predictions.to(torch.double), weights.to(torch.double)).sum(-1)


def get_num_missing_labels_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor]
) -> Dict[str, torch.Tensor]:
    return weighted_sum_states("missing_label_sum", _summand, labels, predictions, weights)


class NumMissingLabelsMetricComputation(SingleSumComputation):
    _state = "missing_label_sum"
    _metric_name = MetricName.NUM_MISSING_LABELS
    _needs_predictions = False

    def _per_example(self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _summand(labels, predictions, weights)


class NumMissingLabelsMetric(RecMetric):
    _namespace = MetricNamespace.NUM_MISSING_LABELS
    _computation_class = NumMissingLabelsMetricComputation
