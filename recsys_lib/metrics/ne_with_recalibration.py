"""NE of recalibrated predictions ``p' = c p / (c p + 1 - p)`` (``c = recalibration_coefficient``), for models
trained on negatively down-sampled data. Keys ``recalibrated_ne-<task>|{lifetime,window}_ne`` (+ logloss)."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._recalibrate import check_coefficient, recalibrate
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.ne import accumulate_ne, add_ne_states, check_labels_in_unit_interval, ETA, ne_reports
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class RecalibratedNEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(
        self,
        *args: Any,
        include_logloss: bool = False,
        allow_missing_label_with_zero_weight: bool = False,
        recalibration_coefficient: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args, allow_missing_label_with_zero_weight=allow_missing_label_with_zero_weight, **kwargs
        )
        check_coefficient("RecalibratedNEMetric", recalibration_coefficient)
        self._include_logloss = include_logloss
        self._recalibration_coefficient = recalibration_coefficient
        self.eta = ETA
        add_ne_states(self)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(
            labels, weights, "RecalibratedNEMetric", self._allow_missing_label_with_zero_weight
        )

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
        accumulate_ne(self, "RecalibratedNEMetric", predictions, labels, weights, self.eta)

    def _compute(self) -> List[MetricComputationReport]:
        return ne_reports(self, MetricName.NE, self._include_logloss, self.eta)


class RecalibratedNEMetric(RecMetric):
    _namespace = MetricNamespace.RECALIBRATED_NE
    _computation_class = RecalibratedNEMetricComputation
