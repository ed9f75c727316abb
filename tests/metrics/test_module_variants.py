"""Metric-module variants (CPU-offloaded, no-op), DeferrableMetrics, snapshots, model_utils, the test_utils
harness, state-dict round trips mid-window, bad input, and a 2-rank gloo run of new metrics."""

from concurrent.futures import Future

import numpy as np
import pytest
import torch

from recsys_lib.metrics import test_utils
from recsys_lib.metrics.average import AverageMetric
from recsys_lib.metrics.cali_free_ne import CaliFreeNEMetric
from recsys_lib.metrics.cpu_offloaded_metric_module import CPUOffloadedRecMetricModule
from recsys_lib.metrics.deferrable_metrics import DeferrableMetrics, device_supports_async, transfer_tensors_to_cpu
from recsys_lib.metrics.metric_module import generate_metric_module, REC_METRICS_MAPPING, RecMetricModule
from recsys_lib.metrics.metric_state_snapshot import MetricStateSnapshot
from recsys_lib.metrics.metrics_config import (
    DefaultMetricsConfig,
    MetricsConfig,
    RecComputeMode,
    RecMetricDef,
    RecMetricEnum,
    RecTaskInfo,
    ThroughputDef,
)
from recsys_lib.metrics.model_utils import parse_task_model_outputs, session_ids_to_tensor
from recsys_lib.metrics.ne_positive import NEPositiveMetric
from recsys_lib.metrics.noop_metric_module import NoOpMetricModule
from recsys_lib.metrics.rauc import RAUCMetric
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess

CPU = torch.device("cpu")
TASKS = [RecTaskInfo(name=t, label_name=f"l{t}", prediction_name=f"p{t}", weight_name=f"w{t}") for t in "ab"]


def _config():
    metrics = {RecMetricEnum[e]: RecMetricDef(rec_task_indices=[0, 1], window_size=20)
               for e in ("NE", "AUC", "CALI_FREE_NE", "AVERAGE", "XAUC")}
    return MetricsConfig(rec_tasks=TASKS, rec_metrics=metrics, throughput_metric=ThroughputDef(warmup_steps=1))


def _outs(n, seed=0, batch=8):
    g = torch.Generator().manual_seed(seed)
    return [{k: v for t in "ab" for k, v in ((f"l{t}", (torch.rand(batch, generator=g) < 0.4).double()),
                                                 (f"p{t}", torch.rand(batch, generator=g, dtype=torch.double)),
                                                 (f"w{t}", torch.rand(batch, generator=g, dtype=torch.double)))}
            for _ in range(n)]


def _rec(values):
    return {k: v for k, v in values.items() if not k.startswith("throughput")}


def test_cpu_offloaded_module_equals_the_plain_module_and_round_trips_mid_window():
    plain = generate_metric_module(RecMetricModule, _config(), 8, 1, 0, {}, CPU)
    off = generate_metric_module(CPUOffloadedRecMetricModule, _config(), 8, 1, 0, {}, CPU,
                                 module_kwargs={"model_out_device": CPU, "update_batch_size": 3})
    try:
        outs = _outs(7)
        for out in outs[:5]:
            plain.update(out)
            off.update(out)
        deferred = off.compute()
        got = []
        deferred.subscribe(got.append)
        torch.testing.assert_close(_rec(deferred.resolve()), _rec(plain.compute()))
        assert got and got[0] is deferred.resolve()
        state = off.state_dict()  # mid-window (window 20 = 2.5 batches)
        assert not any(k.startswith("comms_module") for k in state)
        restored = generate_metric_module(CPUOffloadedRecMetricModule, _config(), 8, 1, 0, {}, CPU,
                                          module_kwargs={"model_out_device": CPU})
        restored.load_state_dict(state)
        for out in outs[5:]:
            for m in (plain, off, restored):
                m.update(out)
        want = _rec(plain.compute())
        torch.testing.assert_close(_rec(off.compute().resolve()), want)
        torch.testing.assert_close(_rec(restored.compute().resolve()), want)
        restored.shutdown()
    finally:
        off.shutdown()
        off.shutdown()  # idempotent
    with pytest.raises(RuntimeError, match="shut down"):
        off.update(outs[0])


@pytest.mark.parametrize("enum", [e for e in REC_METRICS_MAPPING if e.name not in ("TOWER_QPS", "SCALAR", "OUTPUT")],
                         ids=str)
def test_state_dict_round_trip_mid_window(enum):
    """Any metric restored from a checkpoint taken mid-window reports what an uninterrupted one does."""
    from tests.metrics.test_rec_metric import _required_inputs, METRIC_KWARGS, RICH_TASKS

    def make():
        return REC_METRICS_MAPPING[enum](world_size=1, my_rank=0, batch_size=8, tasks=RICH_TASKS[:2], window_size=20,
                                         **METRIC_KWARGS.get(enum.name, {}))

    rng = np.random.default_rng(3)
    batches = []
    for i in range(6):
        p = rng.random((2, 8, 3)) if enum.name == "MULTICLASS_RECALL" else rng.random((2, 8))
        y = rng.integers(0, 3, (2, 8)).astype(float) if enum.name == "MULTICLASS_RECALL" else (rng.random((2, 8)) < 0.4) * 1.0
        batches.append((torch.tensor(p), torch.tensor(y), torch.tensor(rng.random((2, 8)) + 0.1), i))
    first, second = make(), make()
    required = sorted(first.get_required_inputs())

    def feed(m, bs):
        for p, y, w, i in bs:
            m.update(predictions=p, labels=y, weights=w, required_inputs=_required_inputs(required, 8, seed=i))

    feed(first, batches[:4])
    second.load_state_dict(first.state_dict())
    feed(first, batches[4:])
    feed(second, batches[4:])
    torch.testing.assert_close(second.compute(), first.compute())


def test_noop_module_and_deferrable_metrics():
    noop = NoOpMetricModule()
    noop.update({"anything": torch.ones(1)})
    assert dict(noop.compute()) == {} and not noop.should_compute()
    future = Future()
    noop.async_compute(future)
    assert future.result() == {}
    pending: Future = Future()
    d = DeferrableMetrics(pending)
    d.update({"extra": 1})
    seen, errors = [], []
    d.subscribe(seen.append, on_error=errors.append)
    assert not d.is_resolved() and repr(d) == "DeferrableMetrics(pending)"
    pending.set_result({"a": 2})
    assert seen == [{"a": 2, "extra": 1}] and d["a"] == 2 and len(d) == 2
    failed: Future = Future()
    DeferrableMetrics(failed).subscribe(seen.append, on_error=errors.append)
    failed.set_exception(RuntimeError("boom"))
    assert str(errors[0]) == "boom"
    out, event = transfer_tensors_to_cpu({"x": torch.ones(2), "n": 3})
    assert event is None and out["n"] == 3 and torch.equal(out["x"], torch.ones(2))
    assert not device_supports_async(CPU)


def test_snapshot_is_detached_from_later_updates():
    module = generate_metric_module(RecMetricModule, _config(), 8, 1, 0, {}, CPU)
    module.update(_outs(1)[0])
    snap = MetricStateSnapshot.from_metrics(module.rec_metrics, module.throughput_metric)
    before = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in snap.metric_states.items()}
    module.update(_outs(1, seed=9)[0])
    for k, v in before.items():
        if isinstance(v, torch.Tensor):
            assert torch.equal(snap.metric_states[k], v), k


def test_model_utils_and_default_config():
    assert session_ids_to_tensor(["x", "y", "x", "z"]).tolist() == [1, 2, 1, 3]
    out = _outs(1)[0]
    del out["wb"]
    labels, preds, weights, req = parse_task_model_outputs(TASKS, out)
    assert torch.equal(weights["b"], torch.ones(8, dtype=torch.double)) and req == {}
    with pytest.raises(ValueError, match="Label la not found in model output for task 'a'"):
        parse_task_model_outputs(TASKS, {"pa": torch.ones(2)})
    module = generate_metric_module(RecMetricModule, DefaultMetricsConfig, 4, 1, 0, {}, CPU)
    module.update({"label": torch.tensor([1.0, 0, 1, 0]), "prediction": torch.tensor([0.8, 0.3, 0.6, 0.1]),
                   "weight": torch.ones(4)})
    assert "ne-DefaultTask|lifetime_ne" in module.compute()


def test_bad_input_names_what_is_wrong():
    m = NEPositiveMetric(world_size=1, my_rank=0, batch_size=4, tasks=[RecTaskInfo(name="a")])
    with pytest.raises(ValueError, match=r"predictions of task\(s\) \['a'\] contain NaN"):
        m.update(predictions=torch.tensor([0.1, float("nan"), 0.3, 0.4]), labels=torch.ones(4), weights=None)
    with pytest.raises(ValueError, match=r"must have the same shape"):
        m.update(predictions=torch.rand(4), labels=torch.ones(3), weights=None)


class _TestAverage(test_utils.TestMetric):
    @staticmethod
    def _get_states(labels, predictions, weights, required_inputs_tensor=None):
        return {"wy": (weights * labels).sum(), "w": weights.sum()}

    @staticmethod
    def _compute(states):
        return states["wy"] / states["w"]


def test_harness_in_one_process():
    res, (life, window, local_life, local_window) = test_utils.rec_metric_value_test_helper(
        AverageMetric, RecComputeMode.FUSED_TASKS_COMPUTATION, _TestAverage, 0, False, False, 1, 0, ["t1", "t2"],
        batch_size=8, nsteps=6, batch_window_size=2)
    for t in ("t1", "t2"):
        torch.testing.assert_close(res[f"average-{t}|lifetime_label_average"], life[t].double())
        torch.testing.assert_close(res[f"average-{t}|window_label_average"], window[t].double())
        torch.testing.assert_close(res[f"average-{t}|local_window_label_average"], local_window[t].double())


def _two_ranks(rank, world_size, batches):
    tasks = [RecTaskInfo(name="a"), RecTaskInfo(name="b")]
    half = slice(rank * 8, (rank + 1) * 8)
    out = {}
    for cls in (NEPositiveMetric, CaliFreeNEMetric, RAUCMetric):
        m = cls(world_size=2, my_rank=rank, batch_size=8, tasks=tasks, window_size=48, compute_on_all_ranks=True)
        for p, y, w in batches:
            m.update(predictions=p[:, half], labels=y[:, half], weights=w[:, half])
        out.update(m.compute())
    # The test_utils harness on the same two ranks (reference states all-gathered by the harness).
    res, tests = test_utils.rec_metric_value_test_helper(
        AverageMetric, RecComputeMode.UNFUSED_TASKS_COMPUTATION, _TestAverage, 0, True, False, 2, rank, ["t1"],
        batch_size=4, nsteps=3, batch_window_size=2)
    torch.testing.assert_close(res["average-t1|lifetime_label_average"], tests[0]["t1"].double())
    torch.testing.assert_close(res["average-t1|window_label_average"], tests[1]["t1"].double())
    return out


@pytest.mark.dist
def test_two_gloo_ranks_equal_one_process_over_the_union():
    g = torch.Generator().manual_seed(11)
    batches = [(torch.rand(2, 16, generator=g, dtype=torch.double), (torch.rand(2, 16, generator=g) < 0.4).double(),
                torch.rand(2, 16, generator=g, dtype=torch.double) + 0.1) for _ in range(4)]
    want = {}
    for cls in (NEPositiveMetric, CaliFreeNEMetric, RAUCMetric):
        m = cls(world_size=1, my_rank=0, batch_size=16, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b")],
                window_size=48)
        for p, y, w in batches:
            m.update(predictions=p, labels=y, weights=w)
        want.update(m.compute())
    for got in run_multiprocess(_two_ranks, 2, batches, timeout_s=240):
        assert set(got) == set(want)
        for k in want:  # RAUC: the gathered windows hold the same examples as the single process's
            torch.testing.assert_close(got[k], want[k], msg=lambda m: f"{k}: {m}")
