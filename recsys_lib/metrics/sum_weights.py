"""Sum of the example weights ``sum(w)``, lifetime and window.

Key ``sum_weights-<task>|{lifetime,window}_sum_weights``; state ``weighted_sum``.
"""

from typing import Dict, Optional

import torch

from recsys_lib.metrics._single_sum import SingleSumComputation, weighted_sum_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def _summand(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    return weights


def compute_weighted_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` sum of the example weights ``sum(w)`` of ``(n_tasks, B)`` inputs."""
    return _summand(labels.to(torch.double), predictions.to(torch.double), weights.to(torch.double)).sum(-1)


def get_weighted_sum_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor]
) -> Dict[str, torch.Tensor]:
    return weighted_sum_states("weighted_sum", _summand, labels, predictions, weights)


class SumWeightsMetricComputation(SingleSumComputation):
    _state = "weighted_sum"
    _metric_name = MetricName.SUM_WEIGHTS
    _needs_predictions = False

    def _per_example(self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return _summand(labels, predictions, weights)


class SumWeightsMetric(RecMetric):
    _namespace = MetricNamespace.SUM_WEIGHTS
    _computation_class = SumWeightsMetricComputation
