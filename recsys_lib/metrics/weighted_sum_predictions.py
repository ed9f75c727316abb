"""Weighted sum of the predictions ``sum(w * p)``, lifetime and window.

Key ``weighted_sum_predictions-<task>|{lifetime,window}_weighted_sum_predictions``; state ``weighted_predictions_sum``.
"""

from typing import Dict, Optional

import torch

from recsys_lib.metrics._single_sum import SingleSumComputation, weighted_sum_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def _summand(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weights * predictions


def compute_weighted_predictions_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` weighted sum of the predictions ``sum(w * p)`` of ``(n_tasks, B)`` inputs."""
    return _summand(labels.to(torch.double), predictions.to(torch.double), weights.to(torch.double)).sum(-1)


def get_weighted_sum_prediction_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor]
) -> Dict[str, torch.Tensor]:
    return weighted_sum_states("weighted_predictions_sum", _summand, labels, predictions, weights)


class WeightedSumPredictionsMetricComputation(SingleSumComputation):
    _state = "weighted_predictions_sum"
    _metric_name = MetricName.WEIGHTED_SUM_PREDICTIONS
    _needs_predictions = True

    def _per_example(self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _summand(labels, predictions, weights)


class WeightedSumPredictionsMetric(RecMetric):
    _namespace = MetricNamespace.WEIGHTED_SUM_PREDICTIONS
    _computation_class = WeightedSumPredictionsMetricComputation
