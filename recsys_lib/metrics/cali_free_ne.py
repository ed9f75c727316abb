"""Calibration-free NE: NE divided by the (base-2) entropy of the mean prediction, so that a model whose
predictions are merely shifted in scale is not rewarded for matching the base rate.

    CE_bits = sum_i w_i * CE(y_i, p_i) / ln 2                          (state ``cross_entropy_sum``)
    H(x)    = -(P * log2(x) + N * log2(1 - x))
    cali_free_ne = (CE_bits / H(P / W)) / H(S / W),    S = sum w * p   (state ``weighted_sum_predictions``)

Keys ``cali_free_ne-<task>|{lifetime,window}_cali_free_ne``.
"""

import math
from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.ne import accumulate_ne, check_labels_in_unit_interval, compute_cross_entropy, ETA  # noqa: F401
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric

_LN2 = math.log(2.0)
_STATES = ("cross_entropy_sum", "weighted_num_samples", "pos_labels", "neg_labels", "weighted_sum_predictions")


def _entropy_bits(pos: torch.Tensor, neg: torch.Tensor, rate: torch.Tensor, eta: float) -> torch.Tensor:
    return -(pos * torch.log2(rate.clamp(min=eta)) + neg * torch.log2(1.0 - rate))


def compute_cali_free_ne(
    ce_sum: torch.Tensor,
    weighted_num_samples: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_labels: torch.Tensor,
    weighted_sum_predictions: torch.Tensor,
    eta: float,
    allow_missing_label_with_zero_weight: bool = False,
) -> torch.Tensor:
    """From summed states (``ce_sum`` in bits); NaN where no weight was seen."""
    label_rate = pos_labels / weighted_num_samples
    ne = ce_sum / _entropy_bits(pos_labels, neg_labels, label_rate, eta)
    return ne / _entropy_bits(pos_labels, neg_labels, weighted_sum_predictions / weighted_num_samples, eta)


def get_cali_free_ne_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> Dict[str, torch.Tensor]:
    w = weights.to(torch.double)
    y = labels.to(torch.double)
    return {
        "cross_entropy_sum": compute_cross_entropy(labels, predictions, weights, eta).sum(-1) / _LN2,
        "weighted_num_samples": w.sum(-1),
        "pos_labels": (w * y).sum(-1),
        "neg_labels": (w * (1.0 - y)).sum(-1),
        "weighted_sum_predictions": (w * predictions.to(torch.double)).sum(-1),
    }


class CaliFreeNEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, allow_missing_label_with_zero_weight: bool = False, **kwargs: Any) -> None:
        super().__init__(
            *args, allow_missing_label_with_zero_weight=allow_missing_label_with_zero_weight, **kwargs
        )
        self.eta = ETA
        for name in _STATES:
            self._add_sum_state(name)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(labels, weights, "CaliFreeNEMetric", self._allow_missing_label_with_zero_weight)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        accumulate_ne(self, "CaliFreeNEMetric", predictions, labels, weights, self.eta, get_cali_free_ne_states)

    def _compute(self) -> List[MetricComputationReport]:
        eta = self.eta
        return self._lifetime_and_window(
            MetricName.CALI_FREE_NE, lambda s: compute_cali_free_ne(*(s[n] for n in _STATES), eta=eta)
        )


class CaliFreeNEMetric(RecMetric):
    _namespace = MetricNamespace.CALI_FREE_NE
    _computation_class = CaliFreeNEMetricComputation
