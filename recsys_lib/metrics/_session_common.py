"""What the session-level metrics share (private): per-task session definitions and predicted/actual hits."""

from typing import Any, Dict, List, Set, Tuple, Union

import torch

from recsys_lib.metrics._session import ranking_within_session
from recsys_lib.metrics.metrics_config import RecTaskInfo, SessionMetricDef


def _as_list(task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> List[RecTaskInfo]:
    return list(task_config) if isinstance(task_config, list) else [task_config]


def session_task_kwargs(metric: str, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Dict[str, Any]:
    """``{"session_metric_def": ...}`` of the task(s); fused tasks must share one definition."""
    defs = [t.session_metric_def for t in _as_list(task_config)]
    if any(d is None for d in defs):
        raise ValueError(f"{metric}: every task needs a session_metric_def")
    if any(d != defs[0] for d in defs):
        raise ValueError(f"{metric}: fused tasks must share one session_metric_def, got {defs}")
    return {"session_metric_def": defs[0]}


def session_task_required_inputs(task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Set[str]:
    return {t.session_metric_def.session_var_name for t in _as_list(task_config) if t.session_metric_def is not None}


def session_hits(
    labels: torch.Tensor, predictions: torch.Tensor, session: torch.Tensor, definition: SessionMetricDef
) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(predicted, actual)`` 0/1 float64 ``(n_tasks, B)``: in the session's top ``top_threshold`` by prediction
    (ties at the cut all in),
    and positive (label > 0, or in the top by label with ``run_ranking_of_labels``)."""
    if definition.top_threshold is None or definition.top_threshold <= 0:
        raise ValueError(f"SessionMetricDef.top_threshold must be > 0, got {definition.top_threshold}")
    top = definition.top_threshold
    session = session.reshape(-1)
    if session.numel() != labels.shape[-1]:
        raise ValueError(f"session ids have {session.numel()} entries for a batch of {labels.shape[-1]}")
    labels2 = labels.reshape(-1, labels.shape[-1])
    preds2 = predictions.reshape(-1, labels.shape[-1])
    # Descending rank = ascending rank of the negated values: examples tied at the cut all count as in the top.
    predicted = torch.stack([ranking_within_session(-p, session) < top for p in preds2]).to(torch.double)
    if definition.run_ranking_of_labels:
        actual = torch.stack([ranking_within_session(-y, session) < top for y in labels2]).to(torch.double)
    else:
        actual = (labels2 > 0).to(torch.double)
    return predicted.reshape(labels.shape), actual.reshape(labels.shape)
