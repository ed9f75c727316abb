"""NE over served examples only (weight != 0; NE ignores zero-weight examples anyway) plus how many there
were. Keys ``serving_ne-<task>|{lifetime,window}_ne`` and ``serving_ne-<task>|total_examples``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._serving import add_num_examples_state, count_served, total_examples_report
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.ne import accumulate_ne, add_ne_states, check_labels_in_unit_interval, ETA, ne_reports
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class ServingNEMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eta = ETA
        add_ne_states(self)
        add_num_examples_state(self)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        # Unserved examples (weight 0) may carry any label.
        check_labels_in_unit_interval(labels, weights, "ServingNEMetric", True)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None or weights is None:
            raise ValueError("ServingNEMetric needs predictions and weights")
        labels = check_labels_in_unit_interval(labels, weights, "ServingNEMetric", True)
        accumulate_ne(self, "ServingNEMetric", predictions, labels, weights, self.eta)
        count_served(self, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return ne_reports(self, MetricName.NE, False, self.eta) + total_examples_report(self)


class ServingNEMetric(RecMetric):
    _namespace = MetricNamespace.SERVING_NE
    _computation_class = ServingNEMetricComputation
