"""Click-through rate: ``sum(w * label) / sum(w)`` (0 when no weight was seen).
Keys ``ctr-<task>|lifetime_ctr`` and ``|window_ctr``."""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric


def compute_ctr(ctr_num: torch.Tensor, ctr_denom: torch.Tensor) -> torch.Tensor:
    return safe_ratio(ctr_num, ctr_denom)


def get_ctr_states(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    w = weights.to(torch.double)
    return {"ctr_num": (w * labels.to(torch.double)).sum(-1), "ctr_denom": w.sum(-1)}


class CTRMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("ctr_num")
        self._add_sum_state("ctr_denom")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if weights is None:
            raise ValueError("CTRMetric needs weights")
        self._accumulate(get_ctr_states(labels, labels if predictions is None else predictions, weights),
                         labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(MetricName.CTR, lambda s: compute_ctr(s["ctr_num"], s["ctr_denom"]))


class CTRMetric(RecMetric):
    _namespace = MetricNamespace.CTR
    _computation_class = CTRMetricComputation
