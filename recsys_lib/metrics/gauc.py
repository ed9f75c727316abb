"""GAUC (session AUC): the mean over sessions of each session's weighted AUC.

A batch holds consecutive sessions of ``num_candidates`` examples each (an update keyword argument, shape
``(S,)``, summing to ``B``). Sessions without both a positive and a negative example are skipped:

    auc_sum     = sum over kept sessions s of AUC_s      (ties in prediction count one half)
    num_samples = number of kept sessions
    gauc        = auc_sum / num_samples                  (0 with no kept session)

Keys ``gauc-<task>|{lifetime,window}_gauc`` and ``|{lifetime,window}_gauc_num_samples``.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def to_3d(tensor_2d: torch.Tensor, seq_lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """``(n_tasks, B)`` -> ``(n_tasks, S, max_length)``: session ``s`` takes the next ``seq_lengths[s]``
    examples, zero-padded."""
    n_tasks = tensor_2d.shape[0]
    lengths = seq_lengths.to(torch.long).to(tensor_2d.device)
    starts = torch.cumsum(lengths, 0) - lengths
    pos = torch.arange(max_length, device=tensor_2d.device)
    valid = pos[None, :] < lengths[:, None]  # (S, L)
    index = (starts[:, None] + pos[None, :]).clamp(max=max(tensor_2d.shape[-1] - 1, 0))
    out = tensor_2d[:, index.reshape(-1)].reshape(n_tasks, lengths.numel(), max_length)
    return out * valid.to(out.dtype)


def compute_gauc_3d(predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``(n_tasks, S, L)`` padded sessions (padding has weight 0) -> ``auc_sum`` and ``num_samples``, ``(n_tasks,)``."""
    p, y, w = (t.to(torch.double) for t in (predictions, labels, weights))
    pos, neg = w * y, w * (1.0 - y)
    diff = p[..., :, None] - p[..., None, :]
    wins = (diff > 0).to(torch.double) + 0.5 * (diff == 0).to(torch.double)
    num = (pos[..., :, None] * neg[..., None, :] * wins).sum((-1, -2))
    denom = pos.sum(-1) * neg.sum(-1)
    kept = denom > 0
    auc = torch.where(kept, num / torch.where(kept, denom, torch.ones_like(denom)), torch.zeros_like(denom))
    return {"auc_sum": auc.sum(-1), "num_samples": kept.to(torch.double).sum(-1)}


def get_auc_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, num_candidates: torch.Tensor
) -> Dict[str, torch.Tensor]:
    if int(num_candidates.sum()) != labels.shape[-1]:
        raise ValueError(
            f"GAUCMetric: num_candidates sums to {int(num_candidates.sum())} but the batch has {labels.shape[-1]} examples"
        )
    max_length = int(num_candidates.max()) if num_candidates.numel() > 0 else 0
    return compute_gauc_3d(*(to_3d(t, num_candidates, max_length) for t in (predictions, labels, weights)))


def compute_window_auc(auc: torch.Tensor, num_samples: torch.Tensor) -> Dict[str, torch.Tensor]:
    return {"gauc": safe_ratio(auc, num_samples), "num_samples": num_samples}


class GAUCMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state("auc_sum")
        self._add_sum_state("num_samples")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        num_candidates: torch.Tensor,
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None or weights is None:
            raise ValueError("GAUCMetric needs predictions and weights")
        self._accumulate(get_auc_states(labels, predictions, weights, num_candidates), predictions.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.GAUC, lambda s: compute_window_auc(s["auc_sum"], s["num_samples"])["gauc"]
        ) + self._lifetime_and_window(MetricName.GAUC_NUM_SAMPLES, lambda s: s["num_samples"])


class GAUCMetric(RecMetric):
    _namespace = MetricNamespace.GAUC
    _computation_class = GAUCMetricComputation
