"""Recommendation metrics (NE, AUC, calibration, CTR, ...) with lifetime and window values, synced over ranks.

Not imported by ``import recsys_lib`` (as in TorchRec); ``import recsys_lib.metrics`` pulls in torchmetrics.
"""

from recsys_lib.metrics.metric_module import (  # noqa: F401
    generate_metric_module,
    REC_METRICS_MAPPING,
    RecMetricModule,
    StateMetric,
)
from recsys_lib.metrics.metrics_config import (  # noqa: F401
    BatchSizeStage,
    MetricsConfig,
    RecComputeMode,
    RecMetricDef,
    RecMetricEnum,
    RecTaskInfo,
    SessionMetricDef,
    StateMetricEnum,
    ThroughputDef,
)
from recsys_lib.metrics.metrics_namespace import (  # noqa: F401
    compose_metric_key,
    MetricName,
    MetricNamespace,
    MetricPrefix,
)
from recsys_lib.metrics._computation import (  # noqa: F401
    MetricComputationReport,
    RecMetricComputation,
    RecMetricException,
)
from recsys_lib.metrics.rec_metric import RecMetric, RecMetricList  # noqa: F401
from recsys_lib.metrics.throughput import ThroughputMetric  # noqa: F401
