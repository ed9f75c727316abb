"""Public names and pinned signatures of ``recsys_lib.metrics`` (TorchRec's ``torchrec.metrics``, §2.12)."""

import math

from recsys_lib.metrics.metrics_config import RecComputeMode
from recsys_lib.metrics.metrics_namespace import MetricPrefix
from tests.public_api import REQUIRED

_M = "recsys_lib.metrics"
_UNFUSED = RecComputeMode.UNFUSED_TASKS_COMPUTATION

NAMES = [
    (f"{_M}.metrics_config", n)
    for n in ("RecTaskInfo", "RecMetricDef", "MetricsConfig", "RecComputeMode", "RecMetricEnum", "RecMetricEnumBase",
              "StateMetricEnum", "ThroughputDef", "SessionMetricDef", "BatchSizeStage", "validate_batch_size_stages")
] + [
    (f"{_M}.metrics_namespace", n)
    for n in ("MetricName", "MetricNameBase", "MetricNamespace", "MetricNamespaceBase", "MetricPrefix",
              "compose_metric_key", "compose_metric_namespace", "compose_customized_metric_key",
              "task_wildcard_metrics_pattern")
] + [
    (f"{_M}.rec_metric", n)
    for n in ("RecMetric", "RecMetricComputation", "RecMetricList", "MetricComputationReport", "RecMetricException")
] + [
    (f"{_M}.metric_module", n)
    for n in ("RecMetricModule", "StateMetric", "generate_metric_module", "REC_METRICS_MAPPING")
] + [
    (f"{_M}.throughput", "ThroughputMetric"),
    (f"{_M}.ne", "NEMetric"), (f"{_M}.ne", "NEMetricComputation"), (f"{_M}.ne", "compute_cross_entropy"),
    (f"{_M}.ne", "compute_ne"), (f"{_M}.ne", "compute_logloss"), (f"{_M}.ne", "get_ne_states"),
    (f"{_M}.auc", "AUCMetric"), (f"{_M}.auc", "AUCMetricComputation"), (f"{_M}.auc", "compute_auc"),
    (f"{_M}.auc", "compute_auc_per_group"),
    (f"{_M}.auprc", "AUPRCMetric"), (f"{_M}.auprc", "compute_auprc"),
    (f"{_M}.calibration", "CalibrationMetric"), (f"{_M}.calibration", "compute_calibration"),
    (f"{_M}.calibration", "get_calibration_states"),
    (f"{_M}.ctr", "CTRMetric"), (f"{_M}.ctr", "compute_ctr"), (f"{_M}.ctr", "get_ctr_states"),
    (f"{_M}.mse", "MSEMetric"), (f"{_M}.mse", "compute_mse"), (f"{_M}.mse", "compute_rmse"),
    (f"{_M}.mse", "get_mse_states"),
    (f"{_M}.mae", "MAEMetric"), (f"{_M}.mae", "compute_mae"), (f"{_M}.mae", "get_mae_states"),
    (f"{_M}.accuracy", "AccuracyMetric"), (f"{_M}.accuracy", "compute_accuracy"),
    (f"{_M}.accuracy", "get_accuracy_states"),
    (f"{_M}.precision", "PrecisionMetric"), (f"{_M}.precision", "compute_precision"),
    (f"{_M}.recall", "RecallMetric"), (f"{_M}.recall", "compute_recall"),
    (f"{_M}.weighted_avg", "WeightedAvgMetric"), (f"{_M}.weighted_avg", "get_weighted_avg_states"),
]

SIGNATURES = [
    (f"{_M}.metrics_config", "RecTaskInfo", [
        ("name", "DefaultTask"), ("label_name", "label"), ("prediction_name", "prediction"),
        ("weight_name", "weight"), ("session_metric_def", None), ("is_negative_task", False),
        ("tensor_name", None), ("weighted", True)]),
    (f"{_M}.metrics_config", "ThroughputDef", [("window_size", 100), ("warmup_steps", 100)]),
    (f"{_M}.metrics_config", "BatchSizeStage", [("batch_size", 0), ("max_iters", 0)]),
    (f"{_M}.metrics_config", "SessionMetricDef", [
        ("session_var_name", REQUIRED), ("top_threshold", None), ("run_ranking_of_labels", False)]),
    (f"{_M}.metrics_namespace", "compose_metric_key", [
        ("namespace", REQUIRED), ("task_name", REQUIRED), ("metric_name", REQUIRED),
        ("metric_prefix", MetricPrefix.DEFAULT), ("description", None)]),
    (f"{_M}.metrics_namespace", "compose_metric_namespace", [("namespace", REQUIRED), ("task_name", REQUIRED)]),
    (f"{_M}.metrics_namespace", "compose_customized_metric_key", [
        ("namespace", REQUIRED), ("metric_name", REQUIRED), ("description", None)]),
    (f"{_M}.rec_metric", "RecMetric", [
        ("world_size", REQUIRED), ("my_rank", REQUIRED), ("batch_size", REQUIRED), ("tasks", REQUIRED),
        ("compute_mode", _UNFUSED), ("window_size", 100), ("fused_update_limit", 0),
        ("compute_on_all_ranks", False), ("should_validate_update", False), ("process_group", None)]),
    (f"{_M}.rec_metric", "RecMetric.update", [
        ("self", REQUIRED), ("predictions", REQUIRED), ("labels", REQUIRED), ("weights", REQUIRED)]),
    (f"{_M}.rec_metric", "RecMetricComputation", [
        ("my_rank", REQUIRED), ("batch_size", REQUIRED), ("n_tasks", REQUIRED), ("window_size", REQUIRED),
        ("compute_on_all_ranks", False), ("should_validate_update", False), ("compute_mode", _UNFUSED),
        ("process_group", None), ("fused_update_limit", 0), ("allow_missing_label_with_zero_weight", False)]),
    (f"{_M}.rec_metric", "MetricComputationReport", [
        ("name", REQUIRED), ("metric_prefix", REQUIRED), ("value", REQUIRED), ("description", None)]),
    (f"{_M}.rec_metric", "RecMetricList", [("rec_metrics", REQUIRED)]),
    (f"{_M}.metric_module", "RecMetricModule", [
        ("batch_size", REQUIRED), ("world_size", REQUIRED), ("rec_tasks", None), ("rec_metrics", None),
        ("throughput_metric", None), ("state_metrics", None), ("compute_interval_steps", 100),
        ("min_compute_interval", 0.0), ("max_compute_interval", math.inf)]),
    (f"{_M}.metric_module", "RecMetricModule.update", [("self", REQUIRED), ("model_out", REQUIRED)]),
    (f"{_M}.metric_module", "generate_metric_module", [
        ("metric_class", REQUIRED), ("metrics_config", REQUIRED), ("batch_size", REQUIRED),
        ("world_size", REQUIRED), ("my_rank", REQUIRED), ("state_metrics_mapping", REQUIRED),
        ("device", REQUIRED), ("process_group", None), ("batch_size_stages", None)]),
    (f"{_M}.throughput", "ThroughputMetric", [
        ("batch_size", REQUIRED), ("world_size", REQUIRED), ("window_seconds", REQUIRED), ("warmup_steps", 100),
        ("batch_size_stages", None)]),
    (f"{_M}.ne", "compute_cross_entropy", [
        ("labels", REQUIRED), ("predictions", REQUIRED), ("weights", REQUIRED), ("eta", REQUIRED)]),
    (f"{_M}.ne", "compute_ne", [
        ("ce_sum", REQUIRED), ("weighted_num_samples", REQUIRED), ("pos_labels", REQUIRED), ("neg_labels", REQUIRED),
        ("eta", REQUIRED), ("allow_missing_label_with_zero_weight", False)]),
    (f"{_M}.auc", "compute_auc", [
        ("n_tasks", REQUIRED), ("predictions", REQUIRED), ("labels", REQUIRED), ("weights", REQUIRED),
        ("apply_bin", False)]),
]
