"""Calibration: ``sum(w * prediction) / sum(w * label)`` (1.0 = predictions match the base rate; 0 when no
positive label weight was seen). Keys ``calibration-<task>|lifetime_calibration`` and ``|window_calibration``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_calibration(calibration_num: torch.Tensor, calibration_denom: torch.Tensor) -> torch.Tensor:
    safe = torch.where(calibration_denom > 0, calibration_denom, torch.ones_like(calibration_denom))
    return torch.where(calibration_denom > 0, calibration_num / safe, torch.zeros_like(calibration_num))


def get_calibration_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor
) -> Dict[str, torch.Tensor]:
    w = weights.to(torch.double)
    return {
        "calibration_num": (w * predictions.to(torch.double)).sum(-1),
        "calibration_denom": (w * labels.to(torch.double)).sum(-1),
    }


class CalibrationMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("calibration_num")
        self._add_sum_state("calibration_denom")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("CalibrationMetric", get_calibration_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.CALIBRATION, lambda s: compute_calibration(s["calibration_num"], s["calibration_denom"])
        )


class CalibrationMetric(RecMetric):
    _namespace = MetricNamespace.CALIBRATION
    _computation_class = CalibrationMetricComputation
