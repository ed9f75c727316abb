"""Calibration of recalibrated predictions ``p' = c p / (c p + 1 - p)`` (``c = recalibration_coefficient``).
Keys ``recalibrated_calibration-<task>|{lifetime,window}_calibration``; states as calibration's."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._recalibrate import check_coefficient, recalibrate
from recsys_lib.metrics.calibration import compute_calibration, get_calibration_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class RecalibratedCalibrationMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, recalibration_coefficient: float = 1.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        check_coefficient("RecalibratedCalibrationMetric", recalibration_coefficient)
        self._recalibration_coefficient = recalibration_coefficient
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
        if predictions is not None:
            predictions = recalibrate(predictions, self._recalibration_coefficient)
        self._accumulate_batch("RecalibratedCalibrationMetric", get_calibration_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.CALIBRATION, lambda s: compute_calibration(s["calibration_num"], s["calibration_denom"])
        )


class RecalibratedCalibrationMetric(RecMetric):
    _namespace = MetricNamespace.RECALIBRATED_CALIBRATION
    _computation_class = RecalibratedCalibrationMetricComputation
