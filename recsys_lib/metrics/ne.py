"""Normalized entropy (NE): weighted cross entropy divided by the entropy of the average label.

    NE = sum_i w_i * CE(y_i, p_i)  /  -(P * log(P / W) + N * log(N / W))
    with P = sum w*y, N = sum w*(1-y), W = P + N, and p clamped to [eta, 1 - eta]

NE < 1 means the model beats always predicting the base rate. Keys: ``ne-<task>|lifetime_ne``,
``|window_ne`` (+ ``|lifetime_logloss``, ``|window_logloss`` with ``include_logloss=True``).
Labels must lie in [0, 1] (examples of weight 0 may carry any label with
``allow_missing_label_with_zero_weight=True``).
"""

from typing import Any, Callable, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import RecMetric

ETA = 1e-12


def compute_cross_entropy(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> torch.Tensor:
    """Per-example weighted binary cross entropy (float64), same shape as the inputs."""
    p = predictions.to(torch.double).clamp(eta, 1.0 - eta)
    y = labels.to(torch.double)
    return -weights.to(torch.double) * (y * torch.log(p) + (1.0 - y) * torch.log1p(-p))


def compute_ne(
    ce_sum: torch.Tensor,
    weighted_num_samples: torch.Tensor,
    pos_labels: torch.Tensor,
    neg_labels: torch.Tensor,
    eta: float,
    allow_missing_label_with_zero_weight: bool = False,
) -> torch.Tensor:
    """NE from summed states; NaN where no weight was seen."""
    mean_label = pos_labels / weighted_num_samples
    ce_norm = -(
        pos_labels * torch.log(mean_label.clamp(min=eta)) + neg_labels * torch.log((1.0 - mean_label).clamp(min=eta))
    )
    return ce_sum / ce_norm


def compute_logloss(
    ce_sum: torch.Tensor, pos_labels: torch.Tensor, neg_labels: torch.Tensor, eta: float
) -> torch.Tensor:
    """Weighted mean cross entropy."""
    return ce_sum / (pos_labels + neg_labels).clamp(min=eta)


def get_ne_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, eta: float
) -> Dict[str, torch.Tensor]:
    """Summed states over the batch (last) dimension: ``(n_tasks,)`` each (float64; the terms of
    ``compute_cross_entropy`` summed without materialising the per-example entropy)."""
    w = weights.to(torch.double)
    wy = w * labels.to(torch.double)  # positive mass
    wn = w - wy  # negative mass w * (1 - y)
    p = torch.clamp(predictions.to(torch.double), eta, 1.0 - eta)  # a fresh tensor: updated in place below
    positive = labels > 0.5
    if torch.equal(positive.to(labels.dtype), labels):  # hard labels: one logarithm per example
        ce_sum = -(w * torch.log(torch.where(positive, p, 1.0 - p))).sum(-1)
    else:
        log_p = torch.log(p)
        ce_sum = -((wy * log_p).sum(-1) + (wn * torch.log1p(p.neg_())).sum(-1))
    return {
        "cross_entropy_sum": ce_sum,
        "weighted_num_samples": w.sum(-1),
        "pos_labels": wy.sum(-1),
        "neg_labels": wn.sum(-1),
    }


def check_labels_in_unit_interval(
    labels: torch.Tensor, weights: torch.Tensor, metric: str, allow_missing_with_zero_weight: bool
) -> torch.Tensor:
    """Raises ``ValueError`` for labels outside [0, 1]; returns labels (zeroed where ignored)."""
    if allow_missing_with_zero_weight:
        labels = torch.where(weights == 0, torch.zeros_like(labels), labels)
    if labels.numel() == 0:
        return labels
    low, high = torch.aminmax(labels)  # NaN propagates into both: one cheap pass decides the common case
    if bool(low >= 0) and bool(high <= 1):
        return labels
    bad = (labels < 0) | (labels > 1) | torch.isnan(labels)
    if bool(bad.any()):
        raise ValueError(
            f"{metric}: labels must lie in [0, 1]; got {labels[bad][:5].tolist()} ({int(bad.sum())} bad value(s))"
        )
    return labels


_NE_STATES = ("cross_entropy_sum", "weighted_num_samples", "pos_labels", "neg_labels")


def add_ne_states(computation: RecMetricComputation) -> None:
    """Registers the four NE sum states (and their window twins) on ``computation``."""
    for name in _NE_STATES:
        computation._add_sum_state(name)


def accumulate_ne(
    computation: RecMetricComputation,
    metric: str,
    predictions: Optional[torch.Tensor],
    labels: torch.Tensor,
    weights: Optional[torch.Tensor],
    eta: float,
    get_states: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], Dict[str, torch.Tensor]] = get_ne_states,
) -> None:
    """The ``update`` of every NE-like metric: adds ``get_states(labels, predictions, weights, eta)`` to the
    sums (labels were checked by ``validate_inputs``; ignored ones are zeroed here)."""
    if predictions is None or weights is None:
        raise ValueError(f"{metric} needs predictions and weights")
    if computation._allow_missing_label_with_zero_weight:  # labels were checked by validate_inputs
        labels = torch.where(weights == 0, torch.zeros_like(labels), labels)
    computation._accumulate(get_states(labels, predictions, weights, eta), predictions.shape[-1])


def ne_reports(
    computation: RecMetricComputation, name: MetricName, include_logloss: bool, eta: float
) -> List[MetricComputationReport]:
    """``lifetime_/window_`` NE under ``name`` (+ logloss) from the four NE sum states."""
    reports = computation._lifetime_and_window(
        name,
        lambda s: compute_ne(s["cross_entropy_sum"], s["weighted_num_samples"], s["pos_labels"], s["neg_labels"], eta),
    )
    if include_logloss:
        reports += computation._lifetime_and_window(
            MetricName.LOG_LOSS,
            lambda s: compute_logloss(s["cross_entropy_sum"], s["pos_labels"], s["neg_labels"], eta),
        )
    return reports


class NEMetricComputation(RecMetricComputation):
    _rows_independent = True

    def __init__(
        self,
        *args: Any,
        include_logloss: bool = False,
        allow_missing_label_with_zero_weight: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            *args, allow_missing_label_with_zero_weight=allow_missing_label_with_zero_weight, **kwargs
        )
        self._include_logloss = include_logloss
        self.eta: float = ETA  # clamp of p and of the mean label; an attribute, as in TorchRec
        add_ne_states(self)

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(labels, weights, "NEMetric", self._allow_missing_label_with_zero_weight)

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        accumulate_ne(self, "NEMetric", predictions, labels, weights, self.eta)

    def _compute(self) -> List[MetricComputationReport]:
        return ne_reports(self, MetricName.NE, self._include_logloss, self.eta)


class NEMetric(RecMetric):
    """Normalized entropy; ``include_logloss=True`` also reports the weighted log loss.

    Example::

        ne = NEMetric(world_size=1, my_rank=0, batch_size=4, tasks=[RecTaskInfo(name="t1")])
        ne.update(predictions=torch.tensor([0.9, 0.2, 0.7, 0.4]), labels=torch.tensor([1., 0., 1., 0.]),
                  weights=None)
        ne.compute()["ne-t1|lifetime_ne"]
    """

    _namespace = MetricNamespace.NE
    _computation_class = NEMetricComputation
