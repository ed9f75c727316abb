"""Metric key naming: ``"{namespace}-{task_name}|{prefix}{metric_name}{description}"``.

Every value a metric module reports is keyed by one of these strings, e.g. ``ne-t1|lifetime_ne``,
``auc-t1|window_auc`` or ``throughput-throughput|total_examples``. Dashboards parse them, so the format
is part of the API and is pinned by tests.

Example::

    >>> compose_metric_key(MetricNamespace.NE, "t1", MetricName.NE, MetricPrefix.WINDOW)
    'ne-t1|window_ne'
"""

from enum import Enum
from typing import Optional


class StrValueMixin:
    """Makes ``str(member)`` and f-strings give the enum value (``"ne"``, not ``"MetricName.NE"``)."""

    def __str__(self) -> str:
        return str(self.value)  # pyre-ignore[16]: provided by Enum


class MetricNameBase(StrValueMixin, Enum):
    pass


class MetricName(MetricNameBase):
    """The ``metric_name`` part of a key."""

    DEFAULT = ""
    NE = "ne"
    LOG_LOSS = "logloss"
    THROUGHPUT = "throughput"
    TOTAL_EXAMPLES = "total_examples"
    ATTEMPT_EXAMPLES = "attempt_examples"
    CTR = "ctr"
    CALIBRATION = "calibration"
    MSE = "mse"
    MAE = "mae"
    RMSE = "rmse"
    AUC = "auc"
    GROUPED_AUC = "grouped_auc"
    AUPRC = "auprc"
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    WEIGHTED_AVG = "weighted_avg"


class MetricNamespaceBase(StrValueMixin, Enum):
    pass


class MetricNamespace(MetricNamespaceBase):
    """The ``namespace`` part of a key (one per metric class)."""

    DEFAULT = ""
    NE = "ne"
    THROUGHPUT = "throughput"
    CTR = "ctr"
    CALIBRATION = "calibration"
    MSE = "mse"
    MAE = "mae"
    AUC = "auc"
    AUPRC = "auprc"
    ACCURACY = "accuracy"
    PRECISION = "precision"
    RECALL = "recall"
    WEIGHTED_AVG = "weighted_avg"


class MetricPrefix(StrValueMixin, Enum):
    """Prefix of ``metric_name``: which span of data the value covers."""

    DEFAULT = ""
    LIFETIME = "lifetime_"
    WINDOW = "window_"
    ATTEMPT = "attempt_"


def _s(value: object) -> str:
    return str(value.value) if isinstance(value, Enum) else str(value)


def task_wildcard_metrics_pattern(
    namespace: MetricNamespaceBase,
    metric_name: MetricNameBase,
    metric_prefix: MetricPrefix = MetricPrefix.DEFAULT,
) -> str:
    """Regex matching the key of ``metric_name`` for any task in ``namespace``."""
    return f"{_s(namespace)}-.+|{_s(metric_prefix)}{_s(metric_name)}"


def compose_metric_namespace(namespace: MetricNamespaceBase, task_name: str) -> str:
    """``"{namespace}-{task_name}"``."""
    return f"{_s(namespace)}-{task_name}"


def compose_customized_metric_key(
    namespace: str, metric_name: str, description: Optional[str] = None
) -> str:
    """``"{namespace}|{metric_name}{description}"`` -- used for state metrics (optimizer stats etc.)."""
    return f"{namespace}|{metric_name}{description or ''}"


def compose_metric_key(
    namespace: MetricNamespaceBase,
    task_name: str,
    metric_name: MetricNameBase,
    metric_prefix: MetricPrefix = MetricPrefix.DEFAULT,
    description: Optional[str] = None,
) -> str:
    """``"{namespace}-{task_name}|{metric_prefix}{metric_name}{description}"``."""
    return compose_customized_metric_key(
        compose_metric_namespace(namespace, task_name),
        f"{_s(metric_prefix)}{_s(metric_name)}",
        description,
    )
