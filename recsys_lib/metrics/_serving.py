"""Counting the served examples (weight != 0) beside a metric's states (private helper of ``serving_ne`` and
``serving_calibration``): a lifetime-only ``num_examples`` state of shape ``(n_tasks,)`` (int64), reported as
``<namespace>-<task>|total_examples``."""

from typing import List

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation


def add_num_examples_state(computation: RecMetricComputation) -> None:
    computation._add_state(
        "num_examples", torch.zeros(computation._n_tasks, dtype=torch.long), add_window_state=False
    )


def count_served(computation: RecMetricComputation, weights: torch.Tensor) -> None:
    served = (weights.reshape(computation._n_tasks, -1) != 0).sum(-1)
    computation.num_examples = computation.num_examples + served.to(computation.num_examples.device)


def total_examples_report(computation: RecMetricComputation) -> List[MetricComputationReport]:
    return [MetricComputationReport(MetricName.TOTAL_EXAMPLES, MetricPrefix.DEFAULT, computation.num_examples)]
