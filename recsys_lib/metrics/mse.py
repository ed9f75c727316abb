"""Mean squared error ``sum(w * (label - prediction)^2) / sum(w)`` and its square root (0 when no weight
was seen). Keys ``mse-<task>|lifetime_mse``, ``|window_mse``, ``|lifetime_rmse``, ``|window_rmse``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_mse(error_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return safe_ratio(error_sum, weighted_num_samples)


def compute_rmse(error_sum: torch.Tensor, weighted_num_samples: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(compute_mse(error_sum, weighted_num_samples))


def compute_r_squared(
    error_sum: torch.Tensor, weighted_num_samples: torch.Tensor, label_sum: torch.Tensor, label_squared_sum: torch.Tensor
) -> torch.Tensor:
    """``1 - SSE / SST`` with ``SST = sum w y^2 - (sum w y)^2 / sum w`` (weighted); 0 where SST is 0."""
    total = label_squared_sum - safe_ratio(label_sum * label_sum, weighted_num_samples)
    return torch.where(total == 0, torch.zeros_like(total), 1.0 - safe_ratio(error_sum, total))


def compute_error_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    diff = labels.to(torch.double) - predictions.to(torch.double)
    return (weights.to(torch.double) * diff * diff).sum(-1)


def get_mse_states(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    return {
        "error_sum": compute_error_sum(labels, predictions, weights),
        "weighted_num_samples": weights.to(torch.double).sum(-1),
    }


class MSEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, include_r_squared: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._include_r_squared = include_r_squared
        self._add_sum_state("error_sum")
        self._add_sum_state("weighted_num_samples")
        if include_r_squared:
            self._add_sum_state("label_sum")
            self._add_sum_state("label_squared_sum")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if not self._include_r_squared:
            self._accumulate_batch("MSEMetric", get_mse_states, predictions, labels, weights)
            return
        if predictions is None or weights is None:
            raise ValueError("MSEMetric needs predictions and weights")
        states = get_mse_states(labels, predictions, weights)
        w, y = weights.to(torch.double), labels.to(torch.double)
        states.update({"label_sum": (w * y).sum(-1), "label_squared_sum": (w * y * y).sum(-1)})
        self._accumulate(states, predictions.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.MSE, lambda s: compute_mse(s["error_sum"], s["weighted_num_samples"])
        ) + self._lifetime_and_window(MetricName.RMSE, lambda s: compute_rmse(s["error_sum"], s["weighted_num_samples"])) + (
            self._lifetime_and_window(
                MetricName.R_SQUARED,
                lambda s: compute_r_squared(s["error_sum"], s["weighted_num_samples"], s["label_sum"], s["label_squared_sum"]),
            ) if self._include_r_squared else []
        )


class MSEMetric(RecMetric):
    _namespace = MetricNamespace.MSE
    _computation_class = MSEMetricComputation
