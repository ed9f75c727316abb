import pytest

from recsys_lib.metrics.metrics_config import (
    BatchSizeStage,
    MetricsConfig,
    RecComputeMode,
    RecMetricDef,
    RecMetricEnum,
    RecTaskInfo,
    StateMetricEnum,
    ThroughputDef,
    validate_batch_size_stages,
)


def test_defaults_follow_torchrec():
    t = RecTaskInfo()
    assert (t.name, t.label_name, t.prediction_name, t.weight_name, t.weighted) == (
        "DefaultTask", "label", "prediction", "weight", True)
    d = RecMetricDef()
    assert d.window_size == 10_000_000 and d.rec_tasks == [] and d.arguments is None
    c = MetricsConfig()
    assert c.rec_compute_mode == RecComputeMode.UNFUSED_TASKS_COMPUTATION and c.compute_interval_steps == 100
    assert ThroughputDef() == ThroughputDef(window_size=100, warmup_steps=100)
    assert RecComputeMode.FUSED_TASKS_COMPUTATION.value == 1 and RecMetricEnum("ne") is RecMetricEnum.NE
    assert str(StateMetricEnum.OPTIMIZERS) == "optimizers"


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="not both"):
        RecMetricDef(rec_tasks=[RecTaskInfo()], rec_task_indices=[0])
    with pytest.raises(ValueError, match="window_size"):
        RecMetricDef(window_size=0)
    with pytest.raises(ValueError, match="duplicate task names"):
        MetricsConfig(rec_tasks=[RecTaskInfo(name="x"), RecTaskInfo(name="x")])
    with pytest.raises(ValueError, match="compute_interval_steps"):
        MetricsConfig(compute_interval_steps=0)
    with pytest.raises(ValueError, match="min_compute_interval"):
        MetricsConfig(min_compute_interval=5.0, max_compute_interval=1.0)
    with pytest.raises(ValueError, match="'|'"):
        RecTaskInfo(name="a|b")


def test_batch_size_stages_validation():
    validate_batch_size_stages([BatchSizeStage(8, 10), BatchSizeStage(16, 0)])
    with pytest.raises(ValueError, match="empty"):
        validate_batch_size_stages([])
    with pytest.raises(ValueError, match=r"batch_size_stages\[0\].max_iters"):
        validate_batch_size_stages([BatchSizeStage(8, 0), BatchSizeStage(16, 0)])
    with pytest.raises(ValueError, match=r"batch_size_stages\[1\].batch_size"):
        validate_batch_size_stages([BatchSizeStage(8, 1), BatchSizeStage(0, 0)])
