"""Configuration of a metric module: tasks, which metrics to run on them, and how often to compute.

A *task* names the three ``model_out`` entries a metric reads (prediction, label, weight). A
``MetricsConfig`` maps ``RecMetricEnum`` members to ``RecMetricDef`` s; ``generate_metric_module``
(in ``metric_module``) turns it into a ``RecMetricModule``.

Example::

    task = RecTaskInfo(name="click", label_name="click_label", prediction_name="click_pred",
                       weight_name="click_weight")
    config = MetricsConfig(
        rec_tasks=[task],
        rec_metrics={RecMetricEnum.NE: RecMetricDef(rec_task_indices=[0], window_size=100_000)},
        throughput_metric=ThroughputDef(),
    )
"""

import math
from dataclasses import dataclass, field
from enum import Enum, unique
from typing import Any, Dict, List, Optional

from recsys_lib.metrics.metrics_namespace import StrValueMixin


class RecMetricEnumBase(StrValueMixin, Enum):
    pass


@unique
class RecMetricEnum(RecMetricEnumBase):
    """Every metric name TorchRec defines; ``metric_module.REC_METRICS_MAPPING`` says which are implemented."""

    NE = "ne"
    NE_POSITIVE = "ne_positive"
    RECALIBRATED_NE = "recalibrated_ne"
    RECALIBRATED_CALIBRATION = "recalibrated_calibration"
    SEGMENTED_NE = "segmented_ne"
    LOG_LOSS = "log_loss"
    CTR = "ctr"
    AUC = "auc"
    AUPRC = "auprc"
    RAUC = "rauc"
    CALIBRATION = "calibration"
    MSE = "mse"
    MAE = "mae"
    MULTICLASS_RECALL = "multiclass_recall"
    RECALL_SESSION_LEVEL = "recall_session_level"
    PRECISION_SESSION_LEVEL = "precision_session_level"
    WEIGHTED_AVG = "weighted_avg"
    TOWER_QPS = "tower_qps"
    ACCURACY = "accuracy"
    NDCG = "ndcg"
    XAUC = "xauc"
    SCALAR = "scalar"
    PRECISION = "precision"
    RECALL = "recall"
    SERVING_NE = "serving_ne"
    SERVING_CALIBRATION = "serving_calibration"
    SERVING_AE_LOSS = "serving_ae_loss"
    OUTPUT = "output"
    TENSOR_WEIGHTED_AVG = "tensor_weighted_avg"
    CALI_FREE_NE = "cali_free_ne"
    UNWEIGHTED_NE = "unweighted_ne"
    HINDSIGHT_TARGET_PR = "hindsight_target_pr"
    NMSE = "nmse"
    AVERAGE = "average"
    MULTI_LABEL_PRECISION = "multi_label_precision"
    NUM_POSITIVE_SAMPLES = "num_positive_samples"
    SUM_WEIGHTS = "sum_weights"
    NUM_MISSING_LABELS = "num_missing_labels"
    WEIGHTED_SUM_PREDICTIONS = "weighted_sum_predictions"


@unique
class StateMetricEnum(StrValueMixin, Enum):
    OPTIMIZERS = "optimizers"
    MODEL_CONFIGURATOR = "model_configurator"


@unique
class RecComputeMode(Enum):
    """How the tasks of one metric are computed.

    * ``UNFUSED_TASKS_COMPUTATION``: one computation (one set of states) per task.
    * ``FUSED_TASKS_COMPUTATION``: one computation whose states have a leading task dimension ``(n_tasks,)``.
    * ``FUSED_TASKS_AND_STATES_COMPUTATION``: accepted; computed like ``FUSED_TASKS_COMPUTATION``.

    All modes give the same numbers; fused modes launch fewer, larger ops.
    """

    FUSED_TASKS_COMPUTATION = 1
    UNFUSED_TASKS_COMPUTATION = 2
    FUSED_TASKS_AND_STATES_COMPUTATION = 3


@dataclass
class SessionMetricDef:
    session_var_name: str
    top_threshold: Optional[int] = None
    run_ranking_of_labels: bool = False


@dataclass
class RecTaskInfo:
    """One prediction task: where its prediction, label and weight live in ``model_out``.

    ``weighted=False`` makes metrics ignore the weights of this task (every example weighs 1).
    """

    name: str = "DefaultTask"
    label_name: str = "label"
    prediction_name: str = "prediction"
    weight_name: str = "weight"
    session_metric_def: Optional[SessionMetricDef] = None
    is_negative_task: bool = False
    tensor_name: Optional[str] = None
    weighted: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or "|" in self.name:
            raise ValueError(f"RecTaskInfo.name must be a non-empty string without '|', got {self.name!r}")


@dataclass
class RecMetricDef:
    """Tasks of one metric (``rec_tasks`` or indices into ``MetricsConfig.rec_tasks``, not both),
    the window size in examples (over all ranks) and extra constructor ``arguments``."""

    rec_tasks: List[RecTaskInfo] = field(default_factory=list)
    rec_task_indices: List[int] = field(default_factory=list)
    window_size: int = 10_000_000
    arguments: Optional[Dict[str, Any]] = None

    def __post_init__(self) -> None:
        if self.rec_tasks and self.rec_task_indices:
            raise ValueError("RecMetricDef: set rec_tasks or rec_task_indices, not both")
        if self.window_size <= 0:
            raise ValueError(f"RecMetricDef.window_size must be > 0, got {self.window_size}")


@dataclass
class ThroughputDef:
    """``window_size`` is in seconds; throughput is reported after ``warmup_steps`` updates."""

    window_size: int = 100
    warmup_steps: int = 100


@dataclass
class BatchSizeStage:
    """Batch size ``batch_size`` for the next ``max_iters`` steps (``0`` on the last stage: until the end)."""

    batch_size: int = 0
    max_iters: Optional[int] = 0


def validate_batch_size_stages(batch_size_stages: Optional[List[BatchSizeStage]]) -> None:
    """Raises ``ValueError`` unless every batch size is > 0 and only the last stage is open-ended (``None``:
    nothing to check)."""
    if batch_size_stages is None:
        return
    if len(batch_size_stages) == 0:
        raise ValueError("batch_size_stages must not be empty")
    for i, stage in enumerate(batch_size_stages):
        if stage.batch_size <= 0:
            raise ValueError(f"batch_size_stages[{i}].batch_size must be > 0, got {stage.batch_size}")
        last = i == len(batch_size_stages) - 1
        iters = stage.max_iters or 0  # None: open-ended, like 0
        if iters < 0 or (not last and iters == 0):
            raise ValueError(
                f"batch_size_stages[{i}].max_iters must be > 0 (0 is allowed on the last stage only), "
                f"got {stage.max_iters}"
            )


@dataclass
class MetricsConfig:
    """Everything ``generate_metric_module`` needs; fields as in TorchRec."""

    rec_tasks: List[RecTaskInfo] = field(default_factory=list)
    rec_metrics: Dict[RecMetricEnum, RecMetricDef] = field(default_factory=dict)
    throughput_metric: Optional[ThroughputDef] = None
    rec_compute_mode: RecComputeMode = RecComputeMode.UNFUSED_TASKS_COMPUTATION
    fused_update_limit: int = 0
    state_metrics: List[StateMetricEnum] = field(default_factory=list)
    compute_interval_steps: int = 100
    min_compute_interval: float = 0.0
    max_compute_interval: float = math.inf
    compute_on_all_ranks: bool = False
    should_validate_update: bool = False
    enable_pt2_compile: bool = False
    should_clone_update_inputs: bool = False
    use_cpu_offloaded_rec_metric_module: Optional[bool] = None

    def __post_init__(self) -> None:
        if self.compute_interval_steps <= 0:
            raise ValueError(f"compute_interval_steps must be > 0, got {self.compute_interval_steps}")
        if not 0.0 <= self.min_compute_interval <= self.max_compute_interval:
            raise ValueError(
                "need 0 <= min_compute_interval <= max_compute_interval, got "
                f"{self.min_compute_interval} and {self.max_compute_interval}"
            )
        if self.fused_update_limit < 0:
            raise ValueError(f"fused_update_limit must be >= 0, got {self.fused_update_limit}")
        names = [t.name for t in self.rec_tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate task names in MetricsConfig.rec_tasks: {names}")


# Ready-made configs, as in TorchRec: one default task with NE and throughput, and an empty config.
DefaultTaskInfo = RecTaskInfo(
    name="DefaultTask", label_name="label", prediction_name="prediction", weight_name="weight"
)

DefaultMetricsConfig = MetricsConfig(
    rec_tasks=[DefaultTaskInfo],
    rec_metrics={RecMetricEnum.NE: RecMetricDef(rec_tasks=[DefaultTaskInfo], window_size=10_000_000)},
    throughput_metric=ThroughputDef(),
    state_metrics=[],
)

EmptyMetricsConfig = MetricsConfig(rec_tasks=[], rec_metrics={}, throughput_metric=None, state_metrics=[])
