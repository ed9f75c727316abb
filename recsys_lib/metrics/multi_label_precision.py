"""Multi-label precision: one precision per label, for predictions and labels given as integer bit masks.

Each example's prediction and label are integers whose bit ``j`` (LSB first) says whether label ``j`` is
predicted / true, e.g. with ``num_labels=3``: ``5 = 0b101`` -> labels 0 and 2. Per label ``j``:

    true_pos_sum_<name_j>  = sum w * pred_j * true_j
    false_pos_sum_<name_j> = sum w * pred_j * (1 - true_j)
    precision_j            = TP / (TP + FP)        (0 when label j was never predicted)

``label_names`` (default ``label_<j>``) name the states and the keys
``multi_label_precision-<task>|{lifetime,window}_multi_label_precision<name_j>``.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch

from recsys_lib.metrics._computation import safe_ratio
from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric


def compute_multi_label_precision(num_true_positives: torch.Tensor, num_false_positives: torch.Tensor) -> torch.Tensor:
    return safe_ratio(num_true_positives, num_true_positives + num_false_positives)


class MultiLabelPrecisionMetricComputation(RecMetricComputation):
    def __init__(self, *args: Any, num_labels: int = 1, label_names: Optional[List[str]] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if num_labels <= 0 or num_labels > 62:
            raise ValueError(f"num_labels must be in [1, 62] (bits of an int64), got {num_labels}")
        if label_names is not None and len(label_names) != num_labels:
            raise ValueError(f"label_names has {len(label_names)} names for num_labels={num_labels}")
        self._num_labels = num_labels
        self._label_names = list(label_names) if label_names is not None else [f"label_{j}" for j in range(num_labels)]
        for name in self._label_names:
            self._add_sum_state(f"true_pos_sum_{name}")
            self._add_sum_state(f"false_pos_sum_{name}")

    def _decode_integer_to_labels(self, tensor: torch.Tensor, num_labels: int) -> torch.Tensor:
        """``(T, B)`` integer masks -> ``(T, B, num_labels)`` 0/1 float64 (bit j, LSB first)."""
        bits = torch.arange(num_labels, device=tensor.device)
        return ((tensor.to(torch.long).unsqueeze(-1) >> bits) & 1).to(torch.double)

    def _prepare_inputs(
        self, predictions: torch.Tensor, labels: torch.Tensor, weights: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        w = torch.ones_like(labels, dtype=torch.double) if weights is None else weights.to(torch.double)
        return (
            self._decode_integer_to_labels(predictions, self._num_labels),
            self._decode_integer_to_labels(labels, self._num_labels),
            w,
        )

    def update(
        self,
        *,
        predictions: Optional[torch.Tensor],
        labels: torch.Tensor,
        weights: Optional[torch.Tensor],
        **kwargs: Dict[str, Any],
    ) -> None:
        if predictions is None:
            raise ValueError("MultiLabelPrecisionMetric needs predictions")
        pred, true, w = self._prepare_inputs(predictions, labels, weights)
        states: Dict[str, torch.Tensor] = {}
        for j, name in enumerate(self._label_names):
            states[f"true_pos_sum_{name}"] = (w * pred[..., j] * true[..., j]).sum(-1)
            states[f"false_pos_sum_{name}"] = (w * pred[..., j] * (1.0 - true[..., j])).sum(-1)
        self._accumulate(states, labels.shape[-1])

    def _compute(self) -> List[MetricComputationReport]:
        reports: List[MetricComputationReport] = []
        for name in self._label_names:
            for prefix, window in ((MetricPrefix.LIFETIME, False), (MetricPrefix.WINDOW, True)):
                s = self._sum_state_values(window)
                value = compute_multi_label_precision(s[f"true_pos_sum_{name}"], s[f"false_pos_sum_{name}"])
                reports.append(MetricComputationReport(MetricName.MULTI_LABEL_PRECISION, prefix, value, description=name))
        return reports


class MultiLabelPrecisionMetric(RecMetric):
    _namespace = MetricNamespace.MULTI_LABEL_PRECISION
    _computation_class = MultiLabelPrecisionMetricComputation
