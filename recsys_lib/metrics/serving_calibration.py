"""Calibration over served examples (weight != 0) plus how many there were. Keys
``serving_calibration-<task>|{lifetime,window}_calibration`` and ``serving_calibration-<task>|total_examples``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._serving import add_num_examples_state, count_served, total_examples_report
from recsys_lib.metrics.calibration import compute_calibration, get_calibration_states
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class ServingCalibrationMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("calibration_num")
        self._add_sum_state("calibration_denom")
        add_num_examples_state(self)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("ServingCalibrationMetric", get_calibration_states, predictions, labels, weights)
        assert weights is not None  # checked by _accumulate_batch
        count_served(self, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.CALIBRATION, lambda s: compute_calibration(s["calibration_num"], s["calibration_denom"])
        ) + total_examples_report(self)


class ServingCalibrationMetric(RecMetric):
    _namespace = MetricNamespace.SERVING_CALIBRATION
    _computation_class = ServingCalibrationMetricComputation
