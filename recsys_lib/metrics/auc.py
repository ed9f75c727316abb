"""Area under the ROC curve over the window of buffered examples (weighted, soft labels allowed).

Each example contributes positive mass ``w * y`` and negative mass ``w * (1 - y)``; AUC is the probability
that a positive ranks above a negative, ties counting one half:

    AUC = sum_{i,j} pos_i * neg_j * ([p_i > p_j] + 0.5 [p_i == p_j]) / (sum pos * sum neg)

computed in O(N log N) by sorting once (a radix sort of the int32 ``sort_key``, one gather of 8-byte
(weight, label) pairs) and summing over groups of equal predictions. The buffers keep each task's window
contiguous (``_buffered``), so nothing is copied before the sort.
0.5 when there is no positive or no negative mass. Key ``auc-<task>|window_auc`` (no lifetime value);
``grouped_auc=True`` adds ``|window_grouped_auc`` = mean AUC over ``grouping_keys`` groups (a required
input), ``apply_bin=True`` turns soft labels into 0/1 at 0.039 (as TorchRec does).
"""

from typing import Any, List, Tuple

import torch

from recsys_lib.metrics._buffered import BufferedWindowComputation
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricException
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics.rec_metric import RecMetric

_LABEL_BIN_THRESHOLD = 0.039  # apply_bin: soft labels at or above count as positive


def sort_key(predictions: torch.Tensor) -> torch.Tensor:
    """int32 keys that order like the float32 predictions: non-negative floats order like their bit patterns;
    for negative ones the low 31 bits are flipped. Sorting these runs a radix sort, several times faster
    than sorting floats on CPU."""
    bits = predictions.to(torch.float32).contiguous().view(torch.int32)
    return bits ^ ((bits >> 31) & 0x7FFFFFFF)


def group_masses(
    predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, binarize_labels: bool = False
) -> torch.Tensor:
    """Cumulative (negative, positive) weight at the end of each group of equal predictions, ascending.

    Args:
        predictions, labels, weights: ``(N,)`` examples of one task, ``N > 0``.
        binarize_labels: labels ``>= 0.039`` count as 1, the others as 0 (TorchRec's ``apply_bin``).

    Returns:
        ``(G, 2)`` float64 for ``G`` distinct predictions: row ``g`` holds the negative and positive mass of
        every example whose prediction is ``<=`` the ``g``-th smallest one.
    """
    keys, order = torch.sort(sort_key(predictions))  # a radix sort: ties need no stable order (grouped below)
    if binarize_labels:
        labels = (labels >= _LABEL_BIN_THRESHOLD).to(torch.float)
    # (weight, label) rows of the buffers' dtype (float32, or float64 when given): one gather applies the order.
    dtype = torch.double if torch.double in (weights.dtype, labels.dtype) else torch.float
    pairs = torch.stack([weights.to(dtype), labels.to(dtype)], 1)
    if dtype == torch.float:  # each row as one 8-byte word: a 1-d gather, about twice as fast as gathering rows
        mass = pairs.view(torch.int64).reshape(-1).index_select(0, order).view(dtype).reshape(-1, 2)
    else:
        mass = pairs.index_select(0, order)
    mass = mass.to(torch.double)
    mass[:, 1] *= mass[:, 0]  # positive mass w * y
    mass[:, 0] -= mass[:, 1]  # negative mass w * (1 - y)
    _, counts = torch.unique_consecutive(keys, return_counts=True)
    return torch.cumsum(mass, 0).index_select(0, torch.cumsum(counts, 0) - 1)


def _auc_one(predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, apply_bin: bool) -> torch.Tensor:
    half = torch.full((), 0.5, dtype=torch.double, device=predictions.device)
    if predictions.numel() == 0:
        return half
    at_end = group_masses(predictions, labels, weights, apply_bin)
    # A group's positives beat every negative below it and tie (one half) with its own negatives.
    before_neg = torch.cat([at_end.new_zeros(1), at_end[:-1, 0]])
    group = torch.diff(at_end, dim=0, prepend=at_end.new_zeros(1, 2))
    denom = at_end[-1, 0] * at_end[-1, 1]
    if bool(denom <= 0):
        return half
    return torch.dot(group[:, 1], before_neg + 0.5 * group[:, 0]) / denom


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
    n_tasks: int,
    predictions: List[torch.Tensor],
    labels: List[torch.Tensor],
    weights: List[torch.Tensor],
    grouping_keys: torch.Tensor,
) -> torch.Tensor:
    """Mean over groups of each group's AUC, per task.

    Args:
        n_tasks: number of tasks T.
        predictions, labels, weights: chunks of shape ``(T, N_i)`` (or ``(N_i,)`` for T = 1), joined along
            the example axis.
        grouping_keys: ``(N,)`` group of each example; a leading ``-1`` (the padding of an empty state)
            is dropped.

    Returns:
        ``(T,)`` float64; 0.5 per task when there is no group.
    """
    p, y, w = (torch.cat([c.reshape(n_tasks, -1) for c in chunks], dim=-1) for chunks in (predictions, labels, weights))
    if grouping_keys.numel() > 0 and int(grouping_keys[0]) == -1:
        grouping_keys = grouping_keys[1:]
    groups = torch.unique(grouping_keys)
    if groups.numel() == 0:
        return torch.full((n_tasks,), 0.5, dtype=torch.double, device=p.device)
    per_group = [compute_auc(n_tasks, p[:, grouping_keys == g], y[:, grouping_keys == g],
                             w[:, grouping_keys == g]) for g in groups]
    return torch.stack(per_group).mean(0)


class AUCMetricComputation(BufferedWindowComputation):
    def __init__(
        self,
        *args: Any,
        grouped_auc: bool = False,
        apply_bin: bool = False,
        fused_update_limit: int = 0,
        **kwargs: Any,
    ) -> None:
        if grouped_auc and fused_update_limit > 0:
            raise RecMetricException("grouped_auc and fused_update_limit > 0 cannot be enabled together")
        super().__init__(*args, use_grouping_keys=grouped_auc, **kwargs)
        # Accepted as in TorchRec; the buffered window already holds every update, so no fusing is needed.
        self._fused_update_limit = fused_update_limit
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
            value = compute_auc_per_group(self._n_tasks, [p], [y], [w], self.buffered("grouping_keys"))
            reports.append(MetricComputationReport(MetricName.GROUPED_AUC, MetricPrefix.WINDOW, value))
        return reports


class AUCMetric(RecMetric):
    _namespace = MetricNamespace.AUC
    _computation_class = AUCMetricComputation
