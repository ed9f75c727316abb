"""NDCG@k per session, averaged over sessions; by default reported as ``1 - NDCG`` so that it falls as the
model improves (like NE).

Sessions are the distinct ids of the required input ``session_key``. Within a session, examples ranked by
prediction (ties: earlier first) give

    DCG@k  = sum_{r < k} gain(y_(r)) / log2(r + 2),   gain(y) = y  or  2^y - 1 (exponential_gain)
    IDCG@k = the same with examples ranked by label;  NDCG = DCG / IDCG  (0 when IDCG = 0)

(``k = -1``: the whole session). Session ``s`` weighs ``w_s`` = its largest example weight, and

    sum_ndcg = sum_s w_s * (1 - NDCG_s)  (or w_s * NDCG_s without report_ndcg_as_decreasing_curve)
    ndcg     = sum_ndcg / num_sessions

``remove_single_length_sessions`` skips one-example sessions; tasks with ``is_negative_task`` use ``1 - y``.
Keys ``ndcg-<task>|{lifetime,window}_ndcg``; states ``sum_ndcg``, ``num_sessions``.
"""

from typing import Any, Dict, List, Optional, Union

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._session import position_within_session
from recsys_lib.metrics.metrics_config import RecTaskInfo
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def _session_ndcg(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, session: torch.Tensor,
    k: int, exponential_gain: bool, remove_single: bool,
) -> Dict[str, torch.Tensor]:
    """One task: ``(B,)`` inputs -> per-session NDCG ``(S,)``, session weights ``(S,)`` and kept mask."""
    y = labels.to(torch.double)
    gain = torch.pow(2.0, y) - 1.0 if exponential_gain else y
    ids, sess = torch.unique(session.reshape(-1), return_inverse=True)
    n_sessions = ids.numel()
    rank_pred = position_within_session(predictions, sess)
    rank_label = position_within_session(y, sess)
    cutoff = float("inf") if k < 0 else k
    discount = lambda r: torch.where(r < cutoff, 1.0 / torch.log2(r.to(torch.double) + 2.0), torch.zeros_like(y))  # noqa: E731
    dcg = torch.zeros(n_sessions, dtype=torch.double).index_add_(0, sess, gain * discount(rank_pred))
    idcg = torch.zeros(n_sessions, dtype=torch.double).index_add_(0, sess, gain * discount(rank_label))
    sizes = torch.zeros(n_sessions, dtype=torch.long).index_add_(0, sess, torch.ones_like(sess))
    w_s = torch.full((n_sessions,), -float("inf"), dtype=torch.double).scatter_reduce(
        0, sess, weights.to(torch.double), reduce="amax"
    )
    kept = sizes > 1 if remove_single else torch.ones(n_sessions, dtype=torch.bool)
    return {"ndcg": safe_ratio(dcg, idcg), "weight": w_s, "kept": kept}


class NDCGComputation(RecMetricComputation):
    def __init__(
        self,
        *args: Any,
        exponential_gain: bool = False,
        session_key: str = "session_id",
        k: int = -1,
        report_ndcg_as_decreasing_curve: bool = True,
        remove_single_length_sessions: bool = False,
        scale_by_weights_tensor: bool = False,
        is_negative_task_mask: Optional[List[bool]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if k == 0 or k < -1:
            raise ValueError(f"NDCG k must be -1 (whole session) or > 0, got {k}")
        self._exponential_gain = exponential_gain
        self._session_key = session_key
        self._k = k
        self._decreasing = report_ndcg_as_decreasing_curve
        self._remove_single = remove_single_length_sessions
        self._scale_by_weights_tensor = scale_by_weights_tensor
        self._is_negative_task_mask = is_negative_task_mask
        self._required_inputs.add(session_key)
        self._add_sum_state("sum_ndcg")
        self._add_sum_state("num_sessions")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        required = kwargs.get("required_inputs")
        if predictions is None:
            raise ValueError("NDCGMetric needs predictions")
        if not isinstance(required, dict) or self._session_key not in required:
            raise ValueError(f"NDCGMetric: pass required_inputs={{{self._session_key!r}: Tensor (B,) of session ids}}")
        session = required[self._session_key].reshape(-1)
        if session.numel() != labels.shape[-1]:
            raise ValueError(f"NDCGMetric: {self._session_key} has {session.numel()} ids for a batch of {labels.shape[-1]}")
        w = torch.ones_like(labels, dtype=torch.double) if weights is None else weights
        sums, counts = [], []
        for i in range(self._n_tasks):
            y = labels[i]
            if self._is_negative_task_mask is not None and self._is_negative_task_mask[i]:
                y = 1.0 - y
            r = _session_ndcg(y, predictions[i], w[i], session.cpu(), self._k, self._exponential_gain, self._remove_single)
            value = 1.0 - r["ndcg"] if self._decreasing else r["ndcg"]
            sums.append((r["weight"] * value * r["kept"]).sum())
            counts.append(r["kept"].sum().to(torch.double))
        self._accumulate({"sum_ndcg": torch.stack(sums), "num_sessions": torch.stack(counts)}, labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(MetricName.NDCG, lambda s: safe_ratio(s["sum_ndcg"], s["num_sessions"]))


class NDCGMetric(RecMetric):
    _namespace = MetricNamespace.NDCG
    _computation_class = NDCGComputation

    def _get_task_kwargs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Dict[str, Any]:
        tasks = task_config if isinstance(task_config, list) else [task_config]
        return {"is_negative_task_mask": [t.is_negative_task for t in tasks]}
