"""NE per segment: examples are split by an integer grouping key (a required input) into ``num_groups``
groups and NE is computed in each (formula in ``ne``; cross entropy is kept in bits).

Keys ``segmented_ne-<task>|{lifetime,window}_segmented_ne_<g>`` (+ ``logloss_<g>`` with
``include_logloss``). ``grouping_keys`` may also list several keys (names, dicts or ``GroupingKeyConfig``
s, each with its own ``num_groups``); then states are prefixed ``<key>_`` and keys end ``_<key>_<g>``.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Union

import torch

from recsys_lib.metrics.metrics_namespace import MetricName, MetricNamespace, MetricPrefix
from recsys_lib.metrics.ne import check_labels_in_unit_interval, compute_cross_entropy, compute_logloss, ETA  # noqa: F401
from recsys_lib.metrics._computation import MetricComputationReport, RecMetricComputation
from recsys_lib.metrics.rec_metric import RecMetric

_LN2 = math.log(2.0)
_STATES = ("cross_entropy_sum", "weighted_num_samples", "pos_labels", "neg_labels")


@dataclass
class GroupingKeyConfig:
    name: str
    num_groups: int = 1
    cast_keys_to_int: bool = False


def compute_ne_helper(
    ce_sum: torch.Tensor, weighted_num_samples: torch.Tensor, pos_labels: torch.Tensor, neg_labels: torch.Tensor,
    eta: float,
) -> torch.Tensor:
    """NE from states whose cross entropy is in bits (normaliser in bits too)."""
    mean_label = pos_labels / weighted_num_samples
    norm = -(pos_labels * torch.log2(mean_label.clamp(min=eta)) + neg_labels * torch.log2((1.0 - mean_label).clamp(min=eta)))
    return ce_sum / norm


def compute_ne(
    ce_sum: torch.Tensor, weighted_num_samples: torch.Tensor, pos_labels: torch.Tensor, neg_labels: torch.Tensor,
    num_groups: int, eta: float,
) -> torch.Tensor:
    return compute_ne_helper(ce_sum, weighted_num_samples, pos_labels, neg_labels, eta)


def compute_ne_fused(
    ce_sum: torch.Tensor, weighted_num_samples: torch.Tensor, pos_labels: torch.Tensor, neg_labels: torch.Tensor,
    num_groups: int, n_tasks: int, eta: float,
) -> torch.Tensor:
    return compute_ne_helper(ce_sum, weighted_num_samples, pos_labels, neg_labels, eta).reshape(n_tasks, num_groups)


def get_segemented_ne_states(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, grouping_keys: torch.Tensor,
    eta: float, num_groups: int,
) -> Dict[str, torch.Tensor]:
    """``(n_tasks, B)`` inputs, ``(B,)`` group ids in ``[0, num_groups)`` -> states ``(n_tasks, num_groups)``."""
    g = grouping_keys.reshape(-1).to(torch.long)
    if bool(((g < 0) | (g >= num_groups)).any()):
        raise ValueError(f"SegmentedNEMetric: grouping keys must lie in [0, {num_groups}), got {g.unique().tolist()}")
    onehot = torch.nn.functional.one_hot(g, num_groups).to(torch.double)  # (B, G)
    w = weights.to(torch.double)
    y = labels.to(torch.double)
    per_example = {
        "cross_entropy_sum": compute_cross_entropy(labels, predictions, weights, eta) / _LN2,
        "weighted_num_samples": w,
        "pos_labels": w * y,
        "neg_labels": w * (1.0 - y),
    }
    return {k: v.reshape(-1, g.numel()) @ onehot for k, v in per_example.items()}


def get_segemented_ne_states_fused(
    labels: torch.Tensor, predictions: torch.Tensor, weights: torch.Tensor, grouping_keys: torch.Tensor,
    eta: float, num_groups: int, n_tasks: int,
) -> Dict[str, torch.Tensor]:
    return get_segemented_ne_states(labels, predictions, weights, grouping_keys, eta, num_groups)


def _configs(grouping_keys: Any, num_groups: int, cast_keys_to_int: bool) -> List[GroupingKeyConfig]:
    if isinstance(grouping_keys, str):
        return [GroupingKeyConfig(grouping_keys, num_groups, cast_keys_to_int)]
    out = []
    for key in grouping_keys:
        if isinstance(key, GroupingKeyConfig):
            out.append(key)
        elif isinstance(key, dict):
            out.append(GroupingKeyConfig(**{"num_groups": num_groups, "cast_keys_to_int": cast_keys_to_int, **key}))
        else:
            out.append(GroupingKeyConfig(str(key), num_groups, cast_keys_to_int))
    return out


class SegmentedNEMetricComputation(RecMetricComputation):
    def __init__(
        self,
        *args: Any,
        include_logloss: bool = False,
        num_groups: int = 1,
        grouping_keys: Union[str, List[str], List[Dict[str, Any]], List[GroupingKeyConfig]] = "grouping_keys",
        cast_keys_to_int: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._include_logloss = include_logloss
        self.eta = ETA
        self._single = isinstance(grouping_keys, str)
        self._keys = _configs(grouping_keys, num_groups, cast_keys_to_int)
        for cfg in self._keys:
            if cfg.num_groups <= 0:
                raise ValueError(f"num_groups of {cfg.name!r} must be > 0, got {cfg.num_groups}")
            self._required_inputs.add(cfg.name)
            for state in _STATES:
                self._add_sum_state(self._get_state_prefix(cfg.name) + state, [cfg.num_groups])

    def _get_state_prefix(self, key_name: str) -> str:
        return "" if self._single else f"{key_name}_"

    def _get_description_suffix(self, key_name: str) -> str:
        return "" if self._single else f"_{key_name}"

    def validate_inputs(self, predictions: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> None:
        check_labels_in_unit_interval(labels, weights, "SegmentedNEMetric", self._allow_missing_label_with_zero_weight)

    def update(self, *, predictions: Any, labels: torch.Tensor, weights: Any, **kwargs: Dict[str, Any]) -> None:
        required = kwargs.get("required_inputs")
        if predictions is None or weights is None:
            raise ValueError("SegmentedNEMetric needs predictions and weights")
        labels = check_labels_in_unit_interval(labels, weights, "SegmentedNEMetric", self._allow_missing_label_with_zero_weight)
        states: Dict[str, torch.Tensor] = {}
        for cfg in self._keys:
            if not isinstance(required, dict) or cfg.name not in required:
                raise ValueError(f"SegmentedNEMetric: pass required_inputs={{{cfg.name!r}: Tensor (B,) of group ids}}")
            keys = required[cfg.name]
            keys = keys.to(torch.long) if cfg.cast_keys_to_int else keys
            for k, v in get_segemented_ne_states(labels, predictions, weights, keys, self.eta, cfg.num_groups).items():
                states[self._get_state_prefix(cfg.name) + k] = v
        self._accumulate(states, predictions.shape[-1])

    def _compute_fused(self) -> List[MetricComputationReport]:
        return self._compute()

    def _compute(self) -> List[MetricComputationReport]:
        reports: List[MetricComputationReport] = []
        for cfg in self._keys:
            pre, suffix = self._get_state_prefix(cfg.name), self._get_description_suffix(cfg.name)
            for prefix, window in ((MetricPrefix.LIFETIME, False), (MetricPrefix.WINDOW, True)):
                s = {k: v for k, v in self._sum_state_values(window).items()}
                ce, wns, pos, neg = (s[pre + n] for n in _STATES)
                ne = compute_ne_helper(ce, wns, pos, neg, self.eta)
                loss = compute_logloss(ce, pos, neg, self.eta)
                for g in range(cfg.num_groups):
                    reports.append(MetricComputationReport(MetricName.SEGMENTED_NE, prefix, ne[:, g],
                                                           description=f"{suffix}_{g}"))
                    if self._include_logloss:
                        reports.append(MetricComputationReport(MetricName.LOG_LOSS, prefix, loss[:, g],
                                                               description=f"{suffix}_{g}"))
        return reports


class SegmentedNEMetric(RecMetric):
    _namespace = MetricNamespace.SEGMENTED_NE
    _computation_class = SegmentedNEMetricComputation
