"""What the session-level precision and recall share (private): the computation, the metric class, per-task
session definitions and predicted/actual hits.

A subclass of ``SessionMetricComputation`` names its second state (``num_false_pos`` or ``num_false_neg``)
and what it counts; the value is ``num_true_pos / (num_true_pos + <second>)``.
"""

import abc
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import torch
import torch.distributed as dist

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._session import ranking_within_session
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo, SessionMetricDef
from recsys_lib.metrics.metrics_namespace import MetricName
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


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


class SessionMetricComputation(RecMetricComputation):
    """Session precision/recall states: ``num_true_pos`` and ``_second_state``."""

    _second_state: str = ""
    _metric_name: MetricName = MetricName.DEFAULT

    def __init__(self, *args: Any, session_metric_def: SessionMetricDef, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_metric_def = session_metric_def
        self._required_inputs.add(session_metric_def.session_var_name)
        self._add_sum_state("num_true_pos")
        self._add_sum_state(self._second_state)

    @abc.abstractmethod
    def _second(self, predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
        """0/1 per example counted by the second state (false positives or false negatives)."""

    def _session_states(
        self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, session: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        predicted, actual = session_hits(labels, predictions, session, self._session_metric_def)
        w = weights.to(torch.double)
        return {
            "num_true_pos": (w * predicted * actual).sum(-1),
            self._second_state: (w * self._second(predicted, actual)).sum(-1),
        }

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        required = kwargs.get("required_inputs")
        name = self._session_metric_def.session_var_name
        metric = type(self).__name__
        if predictions is None or weights is None:
            raise ValueError(f"{metric} needs predictions and weights")
        if not isinstance(required, dict) or name not in required:
            raise ValueError(f"{metric}: pass required_inputs={{{name!r}: Tensor (B,) of session ids}}")
        self._accumulate(self._session_states(labels, predictions, weights, required[name]), predictions.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        second = self._second_state
        return self._lifetime_and_window(
            self._metric_name, lambda s: safe_ratio(s["num_true_pos"], s["num_true_pos"] + s[second])
        )


class SessionRecMetric(RecMetric):
    """Session-level precision or recall; every task needs a ``session_metric_def``."""

    def __init__(
        self,
        world_size: int,
        my_rank: int,
        batch_size: int,
        tasks: List[RecTaskInfo],
        compute_mode: RecComputeMode = RecComputeMode.UNFUSED_TASKS_COMPUTATION,
        window_size: int = 100,
        fused_update_limit: int = 0,
        process_group: Optional[dist.ProcessGroup] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            world_size=world_size, my_rank=my_rank, batch_size=batch_size, tasks=tasks, compute_mode=compute_mode,
            window_size=window_size, fused_update_limit=fused_update_limit, process_group=process_group, **kwargs,
        )

    def _get_task_kwargs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Dict[str, Any]:
        return session_task_kwargs(type(self).__name__, task_config)

    def _get_task_required_inputs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Set[str]:
        return session_task_required_inputs(task_config)
