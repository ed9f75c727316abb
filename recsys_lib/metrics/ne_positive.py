"""NE of the positive part only: the cross entropy of the positive labels over the usual NE normaliser.

    NE_positive = sum_i w_i * y_i * -log(p_i)  /  -(P * log(P / W) + N * log(N / W))

(``p`` clamped to [eta, 1 - eta]; P, N, W as in ``ne``). Keys ``ne_positive-<task>|{lifetime,window}_ne_positive``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.ne import accumulate_ne, check_labels_in_unit_interval, compute_ne, ETA, get_ne_states
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def compute_cross_entropy_positive(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> torch.Tensor:
    """Per-example ``-w * y * log(p)`` (float64), same shape as the inputs."""
    p = predictions.to(torch.double).clamp(eta, 1.0 - eta)
    return -weights.to(torch.double) * labels.to(torch.double) * torch.log(p)


def compute_ne_positive(
    ce_positive_sum: torch.Tensor,
    weighted_num_samples: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_labels: torch.Tensor,
    eta: float,
    allow_missing_label_with_zero_weight: bool = False,
) -> torch.Tensor:
    return compute_ne(ce_positive_sum, weighted_num_samples, pos_labels, neg_labels, eta)


def get_ne_positive_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> Dict[str, torch.Tensor]:
    """NE's normaliser states plus ``cross_entropy_positive_sum`` (instead of the full cross entropy)."""
    states = get_ne_states(labels, predictions, weights, eta)
    del states["cross_entropy_sum"]
    states["cross_entropy_positive_sum"] = compute_cross_entropy_positive(labels, predictions, weights, eta).sum(-1)
    return states


class NEPositiveMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, allow_missing_label_with_zero_weight: bool = False, **kwargs: Any) -> None:
        super().__init__(
            *args, allow_missing_label_with_zero_weight=allow_missing_label_with_zero_weight, **kwargs
        )
        self.eta = ETA
        for name in ("cross_entropy_positive_sum", "weighted_num_samples", "pos_labels", "neg_labels"):
            self._add_sum_state(name)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(labels, weights, "NEPositiveMetric", self._allow_missing_label_with_zero_weight)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        accumulate_ne(self, "NEPositiveMetric", predictions, labels, weights, self.eta, get_ne_positive_states)

    def _compute(self) -> List[MetricComputationReport]:
        eta = self.eta
        return self._lifetime_and_window(
            MetricName.NE_POSITIVE,
            lambda s: compute_ne_positive(
                s["cross_entropy_positive_sum"], s["weighted_num_samples"], s["pos_labels"], s["neg_labels"], eta
            ),
        )


class NEPositiveMetric(RecMetric):
    _namespace = MetricNamespace.NE_POSITIVE
    _computation_class = NEPositiveMetricComputation
