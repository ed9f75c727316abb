"""Normalised MSE: the model's squared error over that of a constant prediction of 1.0.

    nmse  = sum w (y - p)^2 / sum w (y - 1)^2        (0 when the baseline error is 0)
    nrmse = sqrt(nmse)

Keys ``nmse-<task>|{lifetime,window}_nmse`` and ``|{lifetime,window}_nrmse``; states ``error_sum``,
``weighted_num_samples``, ``const_pred_error_sum``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.mse import compute_error_sum, get_mse_states
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric

_CONST_PREDICTION = 1.0


def compute_norm(model_error_sum: torch.Tensor, baseline_error_sum: torch.Tensor) -> torch.Tensor:
    return safe_ratio(model_error_sum, baseline_error_sum)


def get_norm_mse_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor
) -> Dict[str, torch.Tensor]:
    states = get_mse_states(labels, predictions, weights)
    states["const_pred_error_sum"] = compute_error_sum(labels, torch.full_like(labels, _CONST_PREDICTION), weights)
    return states


class NMSEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("error_sum", "weighted_num_samples", "const_pred_error_sum"):
            self._add_sum_state(name)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("NMSEMetric", get_norm_mse_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.NMSE, lambda s: compute_norm(s["error_sum"], s["const_pred_error_sum"])
        ) + self._lifetime_and_window(
            MetricName.NRMSE, lambda s: torch.sqrt(compute_norm(s["error_sum"], s["const_pred_error_sum"]))
        )


class NMSEMetric(RecMetric):
    _namespace = MetricNamespace.NMSE
    _computation_class = NMSEMetricComputation
