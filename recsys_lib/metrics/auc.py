"""Area under the ROC curve over the window of buffered examples (weighted, soft labels allowed).

Each example contributes positive mass ``w * y`` and negative mass ``w * (1 - y)``; AUC is the probability
that a positive ranks above a negative, ties counting one half:

    AUC = sum_{i,j} pos_i * neg_j * ([p_i > p_j] + 0.5 [p_i == p_j]) / (sum pos * sum neg)

computed in O(N log N) by sorting once (a radix sort of ``sort_key``) and summing over groups of equal
predictions.
0.5 when there is no positive or no negative mass. Key ``auc-<task>|window_auc`` (no lifetime value);
``grouped_auc=True`` adds ``|window_grouped_auc`` = mean AUC over ``grouping_keys`` groups (a required
input), ``apply_bin=True`` ranks predictions rounded down to 1/1000.
"""

from typing import Any, List, Tuple

import torch

from recsys_lib.metrics._buffered import BufferedWindowComputation
from recsys_lib.metrics._computation import MetricComputationReport
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics.rec_metric import RecMetric

_BINS = 1000


def sort_key(predictions: torch.Tensor) -> torch.Tensor:
    """int32 keys that order like the float32 predictions: non-negative floats order like their bit patterns;
    for negative ones the low 31 bits are flipped. Sorting these runs a radix sort, several times faster
    than sorting floats on CPU."""
    bits = predictions.to(torch.float32).contiguous().view(torch.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def _sorted_curve(
    predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cumulative (positive, negative) weight at the end of each group of equal predictions, best first."""
    p = predictions.to(torch.float32)
    order = torch.sort(sort_key(p), stable=True).indices.flip(0)  # descending; ties grouped below
    p = p[order]
    w = weights.to(torch.double)[order]
    tp = torch.cumsum(w * labels.to(torch.double)[order], 0)
    fp = torch.cumsum(w, 0) - tp
    group_end = torch.ones_like(p, dtype=torch.bool)
    group_end[:-1] = p[1:] != p[:-1]
    return tp[group_end], fp[group_end]


def _auc_one(predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, apply_bin: bool) -> torch.Tensor:
    half = torch.full((), 0.5, dtype=torch.double, device=predictions.device)
    if predictions.numel() == 0:
        return half
    if apply_bin:
        predictions = torch.floor(predictions.to(torch.double) * _BINS) / _BINS
    keys, order = torch.sort(sort_key(predictions), stable=True)  # ascending prediction
    w = weights.to(torch.double)
    pos = w * labels.to(torch.double)
    # (positive, negative) mass per example in sorted order -- one gather of 16-byte rows.
    cum = torch.cumsum(torch.stack([pos, w - pos], 1).index_select(0, order), 0)
    # Totals per group of equal predictions: a group's positives beat every negative below it and tie
    # (one half) with its own negatives.
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    at_end = cum.index_select(0, torch.cumsum(counts, 0) - 1)
    before = torch.cat([at_end.new_zeros(1, 2), at_end[:-1]])
    group = at_end - before
    denom = at_end[-1, 0] * at_end[-1, 1]
    if bool(denom <= 0):
        return half
    return (group[:, 0] * (before[:, 1] + 0.5 * group[:, 1])).sum() / denom


def compute_auc(
    n_tasks: int,
    predictions: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    apply_bin: bool = False,
) -> torch.Tensor:
    """AUC per task for ``(n_tasks, N)`` inputs; returns ``(n_tasks,)`` float64."""
    return torch.stack(
        [_auc_one(predictions[i], labels[i], weights[i], apply_bin) for i in range(n_tasks)]
    ).to(torch.double)


def compute_auc_per_group(
    predictions: torch.Tensor,
    labels: torch.Tensor,
    weights: torch.Tensor,
    grouping_keys: torch.Tensor,
) -> torch.Tensor:
    """Mean over groups (``grouping_keys`` of shape ``(N,)``) of each group's AUC; ``(n_tasks,)``."""
    n_tasks = predictions.shape[0]
    groups = torch.unique(grouping_keys)
    if groups.numel() == 0:
        return torch.full((n_tasks,), 0.5, dtype=torch.double, device=predictions.device)
    per_group = [compute_auc(n_tasks, predictions[:, grouping_keys == g], labels[:, grouping_keys == g],
                             weights[:, grouping_keys == g]) for g in groups]
    return torch.stack(per_group).mean(0)


class AUCMetricComputation(BufferedWindowComputation):
    def __init__(self, *args: Any, grouped_auc: bool = False, apply_bin: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, use_grouping_keys=grouped_auc, **kwargs)
        self._grouped_auc = grouped_auc
        self._apply_bin = apply_bin

    def _compute(self) -> List[MetricComputationReport]:
        p, y, w = self.buffered("predictions"), self.buffered("labels"), self.buffered("weights")
        reports = [
            MetricComputationReport(
                MetricName.AUC, MetricPrefix.WINDOW, compute_auc(self._n_tasks, p, y, w, self._apply_bin)
            )
        ]
        if self._grouped_auc:
            value = compute_auc_per_group(p, y, w, self.buffered("grouping_keys"))
            reports.append(MetricComputationReport(MetricName.GROUPED_AUC, MetricPrefix.WINDOW, value))
        return reports


class AUCMetric(RecMetric):
    _namespace = MetricNamespace.AUC
    _computation_class = AUCMetricComputation
