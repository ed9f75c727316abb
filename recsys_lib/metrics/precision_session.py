"""Session-level precision: within each session (the required input named by
``SessionMetricDef.session_var_name``) the ``top_threshold`` highest predictions count as predicted positive
(ties at the cut all in).

    precision = sum w * predicted * positive / sum w * predicted

With ``run_ranking_of_labels=True`` the labels are ranked the same way; otherwise a label > 0 is positive.
Keys ``precision_session_level-<task>|{lifetime,window}_precision_session_level``; states ``num_true_pos``, ``num_false_pos``.
"""

from typing import Dict

import torch

from recsys_lib.metrics._session_common import SessionMetricComputation, SessionRecMetric
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace


class PrecisionSessionMetricComputation(SessionMetricComputation):
    _second_state = "num_false_pos"
    _metric_name = MetricName.PRECISION_SESSION_LEVEL

    def _second(self, predicted: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
        return predicted * (1.0 - actual)

    def get_precision_states(
        self, labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, session: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        return self._session_states(labels, predictions, weights, session)


class PrecisionSessionMetric(SessionRecMetric):
    _namespace = MetricNamespace.PRECISION_SESSION_LEVEL
    _computation_class = PrecisionSessionMetricComputation
