"""NE with every example weighing 1, whatever the weights say (see ``ne`` for the formula).

Keys ``unweighted_ne-<task>|{lifetime,window}_unweighted_ne``; states as NE's.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.ne import (  # noqa: F401 - public here, as in TorchRec
    accumulate_ne,
    add_ne_states,
    check_labels_in_unit_interval,
    compute_cross_entropy,
    compute_ne,
    ETA,
    get_ne_states,
    ne_reports,
)
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def get_unweighted_ne_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> Dict[str, torch.Tensor]:
    """NE states with ``weights`` ignored (all ones)."""
    return get_ne_states(labels, predictions, torch.ones_like(predictions), eta)


class UnweightedNEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, allow_missing_label_with_zero_weight: bool = False, **kwargs: Any) -> None:
        super().__init__(
            *args, allow_missing_label_with_zero_weight=allow_missing_label_with_zero_weight, **kwargs
        )
        self.eta = ETA
        add_ne_states(self)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(
            labels, weights, "UnweightedNEMetric", self._allow_missing_label_with_zero_weight
        )

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None:
            raise ValueError("UnweightedNEMetric needs predictions")
        accumulate_ne(self, "UnweightedNEMetric", predictions, labels, torch.ones_like(predictions), self.eta)

    def _compute(self) -> List[MetricComputationReport]:
        return ne_reports(self, MetricName.UNWEIGHTED_NE, False, self.eta)


class UnweightedNEMetric(RecMetric):
    _namespace = MetricNamespace.UNWEIGHTED_NE
    _computation_class = UnweightedNEMetricComputation
