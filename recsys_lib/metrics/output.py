"""Logs model outputs passed as required inputs ``latest_imp`` and ``total_latest_imp``: the mean over the
latest batch of each (nothing is accumulated or checkpointed). Keys ``output-<task>|output_latest_imp`` and
``output-<task>|output_total_latest_imp``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation, RecMetricException
from recsys_lib.metrics.rec_metric import RecMetric

_OUTPUTS = ("latest_imp", "total_latest_imp")


class OutputMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._required_inputs |= set(_OUTPUTS)
        for name in _OUTPUTS:
            self._add_state(name, torch.zeros(self._n_tasks, dtype=torch.double), add_window_state=False,
                            persistent=False)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        required = kwargs.get("required_inputs")
        if not isinstance(required, dict) or any(n not in required for n in _OUTPUTS):
            raise RecMetricException(
                f"OutputMetricComputation requires {list(_OUTPUTS)} in required_inputs; got "
                f"{sorted(required) if isinstance(required, dict) else required!r}"
            )
        for name in _OUTPUTS:
            value = required[name].to(torch.double).mean()
            setattr(self, name, torch.full((self._n_tasks,), float(value), dtype=torch.double,
                                           device=getattr(self, name).device))

    def _compute(self) -> List[MetricComputationReport]:
        return [
            MetricComputationReport(MetricName.OUTPUT, MetricPrefix.DEFAULT, getattr(self, n), description=f"_{n}")
            for n in _OUTPUTS
        ]


class OutputMetric(RecMetric):
    _namespace = MetricNamespace.OUTPUT
    _computation_class = OutputMetricComputation
