"""Logs a value given as the label: its (unweighted) mean over the batch.

    lifetime_scalar = mean(labels) of the latest update
    window_scalar   = mean over the last ``window_size`` updates of mean(labels)

Nothing is checkpointed (the states are not persistent, as in TorchRec). Keys
``scalar-<task>|{lifetime,window}_scalar``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


class ScalarMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_state("scalar", torch.zeros(self._n_tasks, dtype=torch.double), add_window_state=False,
                        persistent=False)
        # Window of per-update means: each update counts as one entry of the window.
        self._add_sum_state("scalar_sum", persistent=False)
        self._add_sum_state("num_updates", persistent=False)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        mean = labels.to(torch.double).mean(-1).reshape(self._n_tasks)
        self.scalar = mean.to(self.scalar.device)
        self._accumulate({"scalar_sum": mean, "num_updates": torch.ones_like(mean)}, 1)

    def _compute(self) -> List[MetricComputationReport]:
        return [
            MetricComputationReport(MetricName.SCALAR, MetricPrefix.LIFETIME, self.scalar),
            MetricComputationReport(
                MetricName.SCALAR, MetricPrefix.WINDOW,
                safe_ratio(self.get_window_state("scalar_sum"), self.get_window_state("num_updates")),
            ),
        ]

    def get_extra_state(self) -> Dict[str, Any]:
        return {}  # nothing persists

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        pass


class ScalarMetric(RecMetric):
    _namespace = MetricNamespace.SCALAR
    _computation_class = ScalarMetricComputation
