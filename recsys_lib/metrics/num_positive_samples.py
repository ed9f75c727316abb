"""Weighted positive label mass ``sum(w * y)`` (soft labels count fractionally), lifetime and window.

Key ``num_positive_samples-<task>|{lifetime,window}_num_positive_samples``; state ``weighted_pos_sum``.
"""

from typing import Dict, Optional

import torch

from recsys_lib.metrics._single_sum import SingleSumComputation, weighted_sum_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def _summand(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weights * labels


def compute_weighted_pos_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` weighted positive label mass ``sum(w * y)`` (soft labels count fractionally) of ``(n_tasks, B)`` inputs."""
    return _summand(labels.to(torch.double), predictions.to(torch.double), weights.to(torch.double)).sum(-1)


def get_num_positive_sample_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor]
) -> Dict[str, torch.Tensor]:
    return weighted_sum_states("weighted_pos_sum", _summand, labels, predictions, weights)


class NumPositiveSamplesMetricComputation(SingleSumComputation):
    _state = "weighted_pos_sum"
    _metric_name = MetricName.NUM_POSITIVE_SAMPLES
    _needs_predictions = False

    def _per_example(self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _summand(labels, predictions, weights)


class NumPositiveSamplesMetric(RecMetric):
    _namespace = MetricNamespace.NUM_POSITIVE_SAMPLES
    _computation_class = NumPositiveSamplesMetricComputation
