import re

from recsys_lib.metrics.metrics_namespace import (
    compose_customized_metric_key,
    compose_metric_key,
    compose_metric_namespace,
    MetricName,
    MetricNamespace,
    MetricPrefix,
    task_wildcard_metrics_pattern,
)


def test_key_format_is_namespace_dash_task_bar_prefix_name():
    assert compose_metric_key(MetricNamespace.NE, "t1", MetricName.NE, MetricPrefix.LIFETIME) == "ne-t1|lifetime_ne"
    assert compose_metric_key(MetricNamespace.NE, "t1", MetricName.NE, MetricPrefix.WINDOW) == "ne-t1|window_ne"
    assert compose_metric_key(MetricNamespace.AUC, "t1", MetricName.AUC, MetricPrefix.WINDOW) == "auc-t1|window_auc"
    assert (
        compose_metric_key(MetricNamespace.THROUGHPUT, "throughput", MetricName.TOTAL_EXAMPLES)
        == "throughput-throughput|total_examples"
    )
    assert compose_metric_key(MetricNamespace.MSE, "t", MetricName.RMSE, MetricPrefix.DEFAULT, "_x") == "mse-t|rmse_x"
    assert compose_metric_namespace(MetricNamespace.CTR, "click") == "ctr-click"
    assert compose_customized_metric_key("optimizers", "lr") == "optimizers|lr"
    assert compose_customized_metric_key("optimizers", "lr", "@0") == "optimizers|lr@0"


def test_enum_members_print_as_their_values():
    assert str(MetricName.WEIGHTED_AVG) == "weighted_avg"
    assert f"{MetricNamespace.CALIBRATION}" == "calibration"
    assert [p.value for p in MetricPrefix] == ["", "lifetime_", "window_", "attempt_"]


def test_wildcard_pattern_matches_every_task():
    pat = task_wildcard_metrics_pattern(MetricNamespace.NE, MetricName.NE, MetricPrefix.WINDOW)
    assert pat == "ne-.+|window_ne"
    assert re.fullmatch(pat, "ne-any_task|window_ne")
