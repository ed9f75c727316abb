"""Hindsight target precision/recall: the lowest of 1000 thresholds at which precision reaches
``target_precision``, and the precision and recall there.

For thresholds ``t_k = linspace(0, 1, 1000)[k]`` and an example counted as predicted positive when
``p > t_k``, each state is a ``(n_tasks, 1000)`` sum over examples:

    true_pos_sum[k]  = sum w * y * [p > t_k]
    false_pos_sum[k] = sum w * (1 - y) * [p > t_k]
    false_neg_sum[k] = sum w * y * [p <= t_k]

``k*`` = the first ``k`` with precision >= target (the last threshold when none does). Keys
``hindsight_target_pr-<task>|{lifetime,window}_hindsight_target_pr`` (= ``t_{k*}``),
``..._hindsight_target_precision`` and ``..._hindsight_target_recall``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric

THRESHOLD_NUM = 1000


def _thresholds(device: torch.device) -> torch.Tensor:
    return torch.linspace(0.0, 1.0, THRESHOLD_NUM, dtype=torch.double, device=device)


def compute_precision(num_true_positives: torch.Tensor, num_false_positives: torch.Tensor) -> torch.Tensor:
    return safe_ratio(num_true_positives, num_true_positives + num_false_positives)


def compute_recall(num_true_positives: torch.Tensor, num_false_negitives: torch.Tensor) -> torch.Tensor:
    return safe_ratio(num_true_positives, num_true_positives + num_false_negitives)


def compute_threshold_idx(
    num_true_positives: torch.Tensor, num_false_positives: torch.Tensor, target_precision: float
) -> int:
    """Index of the first threshold (of one task's ``(1000,)`` curves) with precision >= target, else the last."""
    reached = torch.nonzero(compute_precision(num_true_positives, num_false_positives) >= target_precision)
    return int(reached[0, 0]) if reached.numel() > 0 else int(num_true_positives.shape[-1]) - 1


def _above(predictions: torch.Tensor) -> torch.Tensor:
    """``(n_tasks, B, 1000)`` indicator ``p > t_k``."""
    p = predictions.to(torch.double)
    return p.unsqueeze(-1) > _thresholds(p.device)


def compute_true_pos_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    pos = (weights.to(torch.double) * labels.to(torch.double)).unsqueeze(-1)
    return (pos * _above(predictions)).sum(-2)


def compute_false_pos_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    neg = (weights.to(torch.double) * (1.0 - labels.to(torch.double))).unsqueeze(-1)
    return (neg * _above(predictions)).sum(-2)


def compute_false_neg_sum(labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    pos = (weights.to(torch.double) * labels.to(torch.double)).unsqueeze(-1)
    return (pos * ~_above(predictions)).sum(-2)


def get_pr_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor]
) -> Dict[str, torch.Tensor]:
    w = torch.ones_like(predictions) if weights is None else weights
    return {
        "true_pos_sum": compute_true_pos_sum(labels, predictions, w),
        "false_pos_sum": compute_false_pos_sum(labels, predictions, w),
        "false_neg_sum": compute_false_neg_sum(labels, predictions, w),
    }


class HindsightTargetPRMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(self, *args: Any, target_precision: float = 0.5, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._target_precision = target_precision
        for name in ("true_pos_sum", "false_pos_sum", "false_neg_sum"):
            self._add_sum_state(name, [THRESHOLD_NUM])

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None:
            raise ValueError("HindsightTargetPRMetric needs predictions")
        self._accumulate(get_pr_states(labels, predictions, weights), predictions.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        reports: List[MetricComputationReport] = []
        for prefix, window in ((MetricPrefix.LIFETIME, False), (MetricPrefix.WINDOW, True)):
            s = self._sum_state_values(window)
            tp, fp, fn = s["true_pos_sum"], s["false_pos_sum"], s["false_neg_sum"]
            idx = torch.tensor([compute_threshold_idx(tp[i], fp[i], self._target_precision) for i in range(self._n_tasks)],
                               device=tp.device)
            rows = torch.arange(self._n_tasks, device=tp.device)
            reports += [
                MetricComputationReport(MetricName.HINDSIGHT_TARGET_PR, prefix, _thresholds(tp.device)[idx]),
                MetricComputationReport(MetricName.HINDSIGHT_TARGET_PRECISION, prefix,
                                        compute_precision(tp, fp)[rows, idx]),
                MetricComputationReport(MetricName.HINDSIGHT_TARGET_RECALL, prefix, compute_recall(tp, fn)[rows, idx]),
            ]
        return reports


class HindsightTargetPRMetric(RecMetric):
    _namespace = MetricNamespace.HINDSIGHT_TARGET_PR
    _computation_class = HindsightTargetPRMetricComputation
