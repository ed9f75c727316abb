"""Session-level recall: within each session (the required input named by
``SessionMetricDef.session_var_name``) the ``top_threshold`` highest predictions count as predicted positive
(ties at the cut all in).

    recall = sum w * predicted * positive / sum w * positive

With ``run_ranking_of_labels=True`` the labels are ranked the same way; otherwise a label > 0 is positive.
Keys ``recall_session_level-<task>|{lifetime,window}_recall_session_level``; states ``num_true_pos``, ``num_false_neg``.
"""

from typing import Dict

import torch

from recsys_lib.metrics._session import ranking_within_session  # noqa: F401 - public here, as in TorchRec
from recsys_lib.metrics._session_common import SessionMetricComputation, SessionRecMetric
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace


class RecallSessionMetricComputation(SessionMetricComputation):
    _second_state = "num_false_neg"
    _metric_name = MetricName.RECALL_SESSION_LEVEL

    def _second(self, predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
        return (1.0 - predicted) * actual

    def get_recall_states(
        self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, session: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        return self._session_states(labels, predictions, weights, session)


class RecallSessionMetric(SessionRecMetric):
    _namespace = MetricNamespace.RECALL_SESSION_LEVEL
    _computation_class = RecallSessionMetricComputation
