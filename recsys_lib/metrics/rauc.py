"""RAUC (regression AUC) over the window of buffered examples: the share of example pairs that are *not*
inverted, i.e. not ordered one way by the label and the other way by the prediction (unweighted; a tie in
either counts as in order):

    RAUC = 1 - #{i < j : (y_i - y_j) (p_i - p_j) < 0} / (N (N - 1) / 2)      (0.5 with fewer than 2 examples)

Key ``rauc-<task>|window_rauc``; ``grouped_rauc=True`` adds ``|window_grouped_rauc`` = mean RAUC over the
groups of the required input ``grouping_keys``.
"""

from typing import Any, List

import torch

from recsys_lib.metrics._buffered import BufferedWindowComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport
from recsys_lib.metrics.rec_metric import RecMetric

_ROW_CHUNK = 2048


def conquer_and_count(input: List[float], left_index: int, mid_index: int, right_index: int) -> int:
    """Merges the sorted runs ``input[left:mid+1]`` and ``input[mid+1:right+1]`` in place; returns the pairs
    (left element > right element) it crossed."""
    left, right = input[left_index:mid_index + 1], input[mid_index + 1:right_index + 1]
    i = j = 0
    count = 0
    k = left_index
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            input[k] = left[i]
            i += 1
        else:
            input[k] = right[j]
            count += len(left) - i
            j += 1
        k += 1
    for rest in (left[i:], right[j:]):
        for v in rest:
            input[k] = v
            k += 1
    return count


def divide(input: List[float], low: int, high: int) -> int:
    """Merge sort of ``input[low:high+1]`` in place; returns its number of inversions."""
    if low >= high:
        return 0
    mid = (low + high) // 2
    return divide(input, low, mid) + divide(input, mid + 1, high) + conquer_and_count(input, low, mid, high)


def count_reverse_pairs_divide_and_conquer(input: List[float]) -> float:
    """Number of pairs ``i < j`` with ``input[i] > input[j]`` (O(N log N))."""
    return float(divide(list(input), 0, len(input) - 1))


def _rauc_one(predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    n = predictions.numel()
    if n < 2:
        return torch.tensor(0.5, dtype=torch.double, device=predictions.device)
    p, y = predictions.to(torch.double), labels.to(torch.double)
    inverted = torch.zeros((), dtype=torch.double, device=p.device)
    for start in range(0, n, _ROW_CHUNK):
        sl = slice(start, start + _ROW_CHUNK)
        inverted += (((y[sl, None] - y[None, :]) * (p[sl, None] - p[None, :])) < 0).sum()
    # Every inverted unordered pair appears twice among the ordered pairs.
    return 1.0 - (inverted / 2.0) / (n * (n - 1) / 2.0)


def compute_rauc(
    n_tasks: int, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """RAUC per task of ``(n_tasks, N)`` inputs (``weights`` unused, as in TorchRec); ``(n_tasks,)``."""
    return torch.stack([_rauc_one(predictions[i], labels[i]) for i in range(n_tasks)])


def compute_rauc_per_group(
    n_tasks: int, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, grouping_keys: torch.Tensor
) -> torch.Tensor:
    groups = torch.unique(grouping_keys)
    if groups.numel() == 0:
        return torch.full((n_tasks,), 0.5, dtype=torch.double, device=predictions.device)
    return torch.stack([
        compute_rauc(n_tasks, predictions[:, grouping_keys == g], labels[:, grouping_keys == g],
                     weights[:, grouping_keys == g])
        for g in groups
    ]).mean(0)


class RAUCMetricComputation(BufferedWindowComputation):
    def __init__(self, *args: Any, grouped_rauc: bool = False, fused_update_limit: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, use_grouping_keys=grouped_rauc, fused_update_limit=fused_update_limit, **kwargs)
        self._grouped_rauc = grouped_rauc

    def _compute(self) -> List[MetricComputationReport]:
        p, y, w = self.buffered("predictions"), self.buffered("labels"), self.buffered("weights")
        reports = [MetricComputationReport(MetricName.RAUC, MetricPrefix.WINDOW, compute_rauc(self._n_tasks, p, y, w))]
        if self._grouped_rauc:
            value = compute_rauc_per_group(self._n_tasks, p, y, w, self.buffered("grouping_keys"))
            reports.append(MetricComputationReport(MetricName.GROUPED_RAUC, MetricPrefix.WINDOW, value))
        return reports


class RAUCMetric(RecMetric):
    _namespace = MetricNamespace.RAUC
    _computation_class = RAUCMetricComputation
