"""Session-level recall: within each session (the required input named by
``SessionMetricDef.session_var_name``) the ``top_threshold`` highest predictions count as predicted positive.

    recall = sum w * predicted * positive / sum w * positive

With ``run_ranking_of_labels=True`` the labels are ranked the same way (top ``top_threshold`` label values of a
session are the positives); otherwise a label > 0 is positive. Keys
``recall_session_level-<task>|{lifetime,window}_recall_session_level``; states ``num_true_pos`` and ``num_false_neg``.
"""

from typing import Any, Dict, List, Optional, Set, Union

import torch
import torch.distributed as dist

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics._session import ranking_within_session  # noqa: F401 - public here, as in TorchRec
from recsys_lib.metrics._session_common import session_hits, session_task_kwargs, session_task_required_inputs
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo, SessionMetricDef
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics.rec_metric import MetricComputationReport, RecMetric, RecMetricComputation


class RecallSessionMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, session_metric_def: SessionMetricDef, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session_metric_def = session_metric_def
        self._required_inputs.add(session_metric_def.session_var_name)
        self._add_sum_state("num_true_pos")
        self._add_sum_state("num_false_neg")

    def get_recall_states(
        self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, session: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        predicted, actual = session_hits(labels, predictions, session, self._session_metric_def)
        w = weights.to(torch.double)
        return {
            "num_true_pos": (w * predicted * actual).sum(-1),
            "num_false_neg": (w * (1.0 - predicted) * actual).sum(-1),
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
        if predictions is None or weights is None:
            raise ValueError("RecallSessionMetric needs predictions and weights")
        if not isinstance(required, dict) or name not in required:
            raise ValueError(f"RecallSessionMetric: pass required_inputs={{{name!r}: Tensor (B,) of session ids}}")
        self._accumulate(self.get_recall_states(labels, predictions, weights, required[name]), predictions.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.RECALL_SESSION_LEVEL, lambda s: safe_ratio(s["num_true_pos"], s["num_true_pos"] + s["num_false_neg"])
        )


class RecallSessionMetric(RecMetric):
    """Session-level recall; every task needs a ``session_metric_def``."""

    _namespace = MetricNamespace.RECALL_SESSION_LEVEL
    _computation_class = RecallSessionMetricComputation

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
        return session_task_kwargs("RecallSessionMetric", task_config)

    def _get_task_required_inputs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Set[str]:
        return session_task_required_inputs(task_config)
