"""XAUC: the weighted share of example pairs *within a batch* that the predictions order like the labels
(regression counterpart of AUC). A pair is concordant when label and prediction differences have the same
sign: a tie in both counts, a tie in only one does not.

    error_sum          = sum_{i<j} w_i w_j [sign(y_i - y_j) == sign(p_i - p_j)]
    weighted_num_pairs = sum_{i<j} w_i w_j
    xauc               = error_sum / weighted_num_pairs      (0 without pairs)

Pairs never span two batches, so the value depends on how examples are batched. Keys
``xauc-<task>|{lifetime,window}_xauc``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric

_ROW_CHUNK = 1024  # rows of the (B, B) pair matrix held at once


def compute_xauc(error_sum: torch.Tensor, weighted_num_pairs: torch.Tensor) -> torch.Tensor:
    return safe_ratio(error_sum, weighted_num_pairs)


def compute_error_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` weight of concordant pairs ``i < j`` of ``(n_tasks, B)`` inputs (O(B^2) compares,
    ``_ROW_CHUNK`` rows at a time)."""
    y, p, w = (t.to(torch.double).reshape(-1, t.shape[-1]) for t in (labels, predictions, weights))
    total = torch.zeros(y.shape[0], dtype=torch.double, device=y.device)
    # Summing over all ordered pairs counts each unordered pair twice and adds the diagonal (i == j, a tie
    # in both, so concordant with weight w_i^2): subtract it, then halve.
    for start in range(0, y.shape[-1], _ROW_CHUNK):
        sl = slice(start, start + _ROW_CHUNK)
        conc = torch.sign(y[:, sl, None] - y[:, None, :]) == torch.sign(p[:, sl, None] - p[:, None, :])
        total += (w[:, sl, None] * w[:, None, :] * conc).sum((-1, -2))
    return (total - (w * w).sum(-1)) / 2.0


def compute_weighted_num_pairs(weights: torch.Tensor) -> torch.Tensor:
    """``(n_tasks,)`` ``sum_{i<j} w_i w_j = ((sum w)^2 - sum w^2) / 2``."""
    w = weights.to(torch.double)
    return (w.sum(-1) ** 2 - (w * w).sum(-1)) / 2.0


def get_xauc_states(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    return {
        "error_sum": compute_error_sum(labels, predictions, weights),
        "weighted_num_pairs": compute_weighted_num_pairs(weights),
    }


class XAUCMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("error_sum")
        self._add_sum_state("weighted_num_pairs")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        self._accumulate_batch("XAUCMetric", get_xauc_states, predictions, labels, weights)

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.XAUC, lambda s: compute_xauc(s["error_sum"], s["weighted_num_pairs"])
        )


class XAUCMetric(RecMetric):
    _namespace = MetricNamespace.XAUC
    _computation_class = XAUCMetricComputation
