"""Area under the precision-recall curve (average precision) over the window of buffered examples.

With examples sorted by prediction, best first, and grouped by equal prediction:

    AUPRC = sum_k (R_k - R_{k-1}) * P_k,   P_k = TP_k / (TP_k + FP_k),  R_k = TP_k / TP_total,  R_0 = 0

(weighted counts, soft labels allowed); 0 when there is no positive mass. Keys ``auprc-<task>|window_auprc``
and ``|lifetime_auprc`` (the window values of all computes so far, averaged with the window weights as weights).
"""

from typing import Any, List

import torch

from recsys_lib.metrics._buffered import BufferedWindowComputation
from recsys_lib.metrics._computation import MetricComputationReport
from recsys_lib.metrics.auc import group_masses
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics.rec_metric import RecMetric


def _auprc_one(predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=torch.double, device=predictions.device)
    if predictions.numel() == 0:
        return zero
    at_end = group_masses(predictions, labels, weights)
    # Best first: the mass at or above each threshold is the total minus the mass below the group.
    below = torch.cat([at_end.new_zeros(1, 2), at_end[:-1]]).flip(0)
    above = at_end[-1] - below
    fp, tp = above[:, 0], above[:, 1]
    total = tp[-1]
    if bool(total <= 0):
        return zero
    predicted = tp + fp
    precision = torch.where(predicted > 0, tp / torch.where(predicted > 0, predicted, torch.ones_like(predicted)),
                            torch.ones_like(tp))
    recall = tp / total
    steps = torch.diff(recall, prepend=recall.new_zeros(1))
    return (steps * precision).sum()


def compute_auprc(
    n_tasks: int, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """AUPRC per task for ``(n_tasks, N)`` inputs; returns ``(n_tasks,)`` float64."""
    return torch.stack([_auprc_one(predictions[i], labels[i], weights[i]) for i in range(n_tasks)]).to(torch.double)


def compute_auprc_per_group(
    n_tasks: int, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, grouping_keys: torch.Tensor
) -> torch.Tensor:
    """Mean over groups (``grouping_keys`` of shape ``(N,)``) of each group's AUPRC; ``(n_tasks,)``."""
    groups = torch.unique(grouping_keys)
    if groups.numel() == 0:
        return torch.zeros(n_tasks, dtype=torch.double, device=predictions.device)
    return torch.stack([
        compute_auprc(n_tasks, predictions[:, grouping_keys == g], labels[:, grouping_keys == g],
                      weights[:, grouping_keys == g])
        for g in groups
    ]).mean(0)


class AUPRCMetricComputation(BufferedWindowComputation):
    """Window AUPRC per task, and ``lifetime_auprc``: the average of the window AUPRC values of every
    ``compute`` so far (all tasks of the computation), each weighted by the window's total weight.
    The lifetime sums live on the computation, outside ``state_dict`` and untouched by ``reset`` (as in
    TorchRec); they grow on the ranks that compute."""

    def __init__(self, *args: Any, grouped_auprc: bool = False, fused_update_limit: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, use_grouping_keys=grouped_auprc, fused_update_limit=fused_update_limit, **kwargs)
        self._grouped_auprc = grouped_auprc
        self._lifetime_weighted_auprc = torch.zeros((), dtype=torch.double)
        self._lifetime_weight = torch.zeros((), dtype=torch.double)

    def _lifetime(self, window: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Adds this window to the lifetime sums; returns ``(n_tasks,)`` lifetime AUPRC (0.5 before any weight)."""
        window_weight = weights.sum(dtype=torch.double).to(self._lifetime_weight.device)
        self._lifetime_weighted_auprc = self._lifetime_weighted_auprc + (window.to(window_weight.device)
                                                                         * window_weight).sum()
        self._lifetime_weight = self._lifetime_weight + window_weight * self._n_tasks
        value = torch.where(
            self._lifetime_weight > 0,
            self._lifetime_weighted_auprc / torch.where(self._lifetime_weight > 0, self._lifetime_weight, 1.0),
            torch.full((), 0.5, dtype=torch.double),
        )
        return value.expand(self._n_tasks).to(window.device)

    def _compute(self) -> List[MetricComputationReport]:
        p, y, w = self.buffered("predictions"), self.buffered("labels"), self.buffered("weights")
        window = compute_auprc(self._n_tasks, p, y, w)
        reports = [
            MetricComputationReport(MetricName.AUPRC, MetricPrefix.WINDOW, window),
            MetricComputationReport(MetricName.AUPRC, MetricPrefix.LIFETIME, self._lifetime(window, w)),
        ]
        if self._grouped_auprc:
            value = compute_auprc_per_group(self._n_tasks, p, y, w, self.buffered("grouping_keys"))
            reports.append(MetricComputationReport(MetricName.GROUPED_AUPRC, MetricPrefix.WINDOW, value))
        return reports


class AUPRCMetric(RecMetric):
    _namespace = MetricNamespace.AUPRC
    _computation_class = AUPRCMetricComputation
