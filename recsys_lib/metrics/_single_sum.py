"""Metrics that report one weighted sum over examples, lifetime and window (private base class).

``SumWeightsMetric`` (``sum w``), ``NumPositiveSamplesMetric`` (``sum w * y``), ``NumMissingLabelsMetric``
(``sum w * [y is NaN]``) and ``WeightedSumPredictionsMetric`` (``sum w * p``) each set ``_state`` (the state
name, as TorchRec's state dict has it), ``_metric_name`` and ``_per_example`` (the summand, ``(T, B)``).
"""

import abc
from typing import Any, Callable, Dict, List, Optional

import torch

from recsys_lib.metrics.metrics_namespace import MetricName
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation


class SingleSumComputation(RecMetricComputation):
    """One summed state ``_state`` = sum over examples of ``_per_example(labels, predictions, weights)``."""

    _rows_independent = True
    _state: str = ""
    _metric_name: MetricName = MetricName.DEFAULT
    _needs_predictions: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._add_sum_state(self._state)

    @abc.abstractmethod
    def _per_example(self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The ``(n_tasks, B)`` summand (inputs are float64)."""

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if self._needs_predictions and predictions is None:
            raise ValueError(f"{type(self).__name__} needs predictions")
        if weights is None:
            weights = torch.ones_like(labels, dtype=torch.double)
        if predictions is None:
            predictions = torch.zeros_like(labels)
        summand = self._per_example(labels.to(torch.double), predictions.to(torch.double), weights.to(torch.double))
        self._accumulate({self._state: summand.sum(-1)}, labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        name = self._state
        return self._lifetime_and_window(self._metric_name, lambda s: s[name])


def weighted_sum_states(
    state: str, per_example: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    labels: torch.Tensor, predictions: torch.Tensor, weights: Optional[torch.Tensor],
) -> Dict[str, torch.Tensor]:
    """``{state: (n_tasks,) sum}`` for the module-level ``get_*_states`` functions."""
    w = torch.ones_like(labels, dtype=torch.double) if weights is None else weights.to(torch.double)
    return {state: per_example(labels.to(torch.double), predictions.to(torch.double), w).sum(-1)}
