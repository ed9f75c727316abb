"""Weighted average of a tensor passed as a required input (named by ``RecTaskInfo.tensor_name``) instead of
the predictions: ``sum(w * x) / sum(w)`` (0 when no weight was seen; ``weighted=False`` tasks use w = 1).
Keys ``weighted_avg-<task>|{lifetime,window}_weighted_avg`` (TorchRec reports under the ``weighted_avg``
namespace); states ``weighted_sum`` and ``weighted_num_samples``.
"""

from typing import Any, Dict, List, Optional, Set, Union

import torch

from recsys_lib.metrics.metrics_config import RecTaskInfo
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric
from recsys_lib.metrics.weighted_avg import get_mean, get_weighted_avg_states  # noqa: F401 - get_mean public here


def _as_list(task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> List[RecTaskInfo]:
    return list(task_config) if isinstance(task_config, list) else [task_config]


class TensorWeightedAvgMetricComputation(RecMetricComputation):
    def __init__(
        self, *args: Any, tasks: List[RecTaskInfo], description: Optional[str] = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        missing = [t.name for t in tasks if not t.tensor_name]
        if missing:
            raise ValueError(f"TensorWeightedAvgMetric: tasks {missing} have no tensor_name")
        self._tensor_names = [str(t.tensor_name) for t in tasks]
        self._description = description
        self._required_inputs |= set(self._tensor_names)
        self._add_sum_state("weighted_sum")
        self._add_sum_state("weighted_num_samples")

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        required = kwargs.get("required_inputs")
        if not isinstance(required, dict) or any(n not in required for n in self._tensor_names):
            raise ValueError(f"TensorWeightedAvgMetric: pass required_inputs with {self._tensor_names}")
        target = torch.stack([required[n].reshape(-1) for n in self._tensor_names])
        if target.shape[-1] != labels.shape[-1]:
            raise ValueError(
                f"TensorWeightedAvgMetric: tensors {self._tensor_names} have {target.shape[-1]} entries for a batch of "
                f"{labels.shape[-1]}"
            )
        w = torch.ones_like(target, dtype=torch.double) if weights is None else weights
        self._accumulate(get_weighted_avg_states(labels, target, w), labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        return self._lifetime_and_window(
            MetricName.WEIGHTED_AVG, lambda s: get_mean(s["weighted_sum"], s["weighted_num_samples"])
        )


class TensorWeightedAvgMetric(RecMetric):
    _namespace = MetricNamespace.WEIGHTED_AVG
    _computation_class = TensorWeightedAvgMetricComputation

    def _get_task_kwargs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Dict[str, Any]:
        return {"tasks": _as_list(task_config)}

    def _get_task_required_inputs(self, task_config: Union[RecTaskInfo, List[RecTaskInfo]]) -> Set[str]:
        return {str(t.tensor_name) for t in _as_list(task_config) if t.tensor_name}
