"""Multiclass recall@k for every k: the weighted share of examples whose true class is among the k
highest-scored classes (a class tied with the true one does not push it down).

Predictions are class scores ``(B, C)`` per task (``(T, B, C)`` as one tensor), labels class indices ``(B,)``;
``number_of_classes = C`` is a constructor argument. States ``tp_at_k`` ``(n_tasks, C)`` and
``total_weights``; the value is a ``(C,)`` vector ``[recall@1, ..., recall@C]``. Keys
``multiclass_recall-<task>|{lifetime,window}_multiclass_recall``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._inputs import RecModelOutput, to_task_matrix
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import _check_no_nan, RecMetric


def compute_true_positives_at_k(
    predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_classes: int
) -> torch.Tensor:
    """``(n_tasks, n_classes)``: entry ``k`` sums the weights of examples whose class ranks within the top k+1."""
    label_idx = labels.to(torch.long).unsqueeze(-1)
    if bool(((label_idx < 0) | (label_idx >= n_classes)).any()):
        raise ValueError(f"MulticlassRecallMetric: labels must be class indices in [0, {n_classes})")
    true_score = torch.gather(predictions, -1, label_idx)
    rank = (predictions > true_score).sum(-1)  # (n_tasks, B): 0 = best
    hits = rank.unsqueeze(-1) <= torch.arange(n_classes, device=predictions.device)
    return (weights.to(torch.double).unsqueeze(-1) * hits).sum(-2)


def compute_multiclass_recall_at_k(tp_at_k: torch.Tensor, total_weights: torch.Tensor) -> torch.Tensor:
    return safe_ratio(tp_at_k, total_weights.unsqueeze(-1).expand_as(tp_at_k))


def get_multiclass_recall_states(
    predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, n_classes: int
) -> Dict[str, torch.Tensor]:
    return {
        "tp_at_k": compute_true_positives_at_k(predictions, labels, weights, n_classes),
        "total_weights": weights.to(torch.double).sum(-1),
    }


class MulticlassRecallMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "number_of_classes" not in kwargs:
            raise ValueError("MulticlassRecallMetricComputation needs number_of_classes=C (a keyword argument)")
        number_of_classes: int = kwargs.pop("number_of_classes")
        super().__init__(*args, **kwargs)
        if number_of_classes <= 0:
            raise ValueError(f"number_of_classes must be > 0, got {number_of_classes}")
        self._n_classes = number_of_classes
        self._add_sum_state("tp_at_k", [number_of_classes])
        self._add_sum_state("total_weights")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None or weights is None:
            raise ValueError("MulticlassRecallMetric needs predictions and weights")
        predictions = predictions.reshape(self._n_tasks, -1, self._n_classes)
        states = get_multiclass_recall_states(predictions, labels, weights, self._n_classes)
        self._accumulate(states, labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.MULTICLASS_RECALL, lambda s: compute_multiclass_recall_at_k(s["tp_at_k"], s["total_weights"])
        )


class MulticlassRecallMetric(RecMetric):
    """Recall@k (see the module docstring); pass ``number_of_classes=C``."""

    _namespace = MetricNamespace.MULTICLASS_RECALL
    _computation_class = MulticlassRecallMetricComputation

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

    @torch.no_grad()
    def update(
        self,
        *,
        predictions: RecModelOutput,
        labels: RecModelOutput,
        weights: Optional[RecModelOutput],
        **kwargs: Any,
    ) -> None:
        names = [t.name for t in self._tasks]
        if isinstance(predictions, dict):
            p = torch.stack([predictions[n] for n in names])
        else:
            p = predictions.unsqueeze(0) if predictions.dim() == 2 else predictions
        if p.dim() != 3 or p.shape[0] != len(names):
            raise ValueError(f"MulticlassRecallMetric: predictions must be (B, C) per task, got {tuple(p.shape)}")
        _check_no_nan(type(self).__name__, p, self._tasks)
        lab = to_task_matrix("labels", labels, self._tasks)
        w = torch.ones_like(lab, dtype=torch.double) if weights is None else to_task_matrix("weights", weights, self._tasks)
        if lab.shape != p.shape[:2] or w.shape != lab.shape:
            raise ValueError(
                f"MulticlassRecallMetric: predictions {tuple(p.shape)}, labels {tuple(lab.shape)} and weights "
                f"{tuple(w.shape)} disagree on (n_tasks, batch)"
            )
        unweighted = [i for i, t in enumerate(self._tasks) if not t.weighted]
        if unweighted:
            w = w.clone()
            w[unweighted] = 1.0
        if self._fused_update_limit > 0:
            self._pending.append((p, lab, w, kwargs))
            if len(self._pending) >= self._fused_update_limit:
                self._flush()
            return
        self._update_computations(p, lab, w, kwargs)
