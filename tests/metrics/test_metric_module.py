
import numpy as np
import pytest
import torch

import recsys_lib.metrics.metric_module as mm
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.metrics.metric_module import generate_metric_module, REC_METRICS_MAPPING, RecMetricModule, StateMetric
from recsys_lib.metrics.metrics_config import (
    MetricsConfig,
    RecComputeMode,
    RecMetricDef,
    RecMetricEnum,
    RecTaskInfo,
    StateMetricEnum,
    ThroughputDef,
)
from tests.metrics import reference as ref

TASKS = [RecTaskInfo(name="a"), RecTaskInfo(name="b", label_name="lb", prediction_name="pb", weight_name="wb")]
CPU = torch.device("cpu")
TIMING_KEYS = ("throughput-throughput|lifetime_throughput", "throughput-throughput|window_throughput",
               "throughput-throughput|attempt_throughput")


# The metrics this file checks end to end (the others have their own test files).
_CORE = ("NE", "CTR", "CALIBRATION", "AUC", "AUPRC", "MSE", "MAE", "ACCURACY", "PRECISION", "RECALL", "WEIGHTED_AVG")


def _config(mode=RecComputeMode.UNFUSED_TASKS_COMPUTATION, window=24, **kw):
    metrics = {RecMetricEnum[e]: RecMetricDef(rec_task_indices=[0, 1], window_size=window) for e in _CORE}
    metrics[RecMetricEnum.NE] = RecMetricDef(rec_tasks=TASKS, window_size=window, arguments={"include_logloss": True})
    return MetricsConfig(rec_tasks=TASKS, rec_metrics=metrics, rec_compute_mode=mode,
                         throughput_metric=ThroughputDef(window_size=100, warmup_steps=1), **kw)


def _module(batch_size, world_size=1, rank=0, **kw):
    return generate_metric_module(RecMetricModule, _config(**kw), batch_size=batch_size, world_size=world_size,
                                  my_rank=rank, state_metrics_mapping={}, device=CPU)


def _model_out(p, y, w, cols=slice(None)):
    t = lambda a: torch.tensor(a[cols])  # noqa: E731
    return {"prediction": t(p[0]), "label": t(y[0]), "weight": t(w[0]), "pb": t(p[1]), "lb": t(y[1]), "wb": t(w[1])}


def _rec_values(out):
    return {k: v for k, v in out.items() if k not in TIMING_KEYS}


def _unlocal(out):
    """local_compute keys (``ne-a|local_lifetime_ne``) as compute keys."""
    assert all("|local_" in k for k in out)
    return {k.replace("|local_", "|"): v for k, v in out.items()}


class _Optimizers(StateMetric):
    def get_metrics(self):
        return {"lr": 0.5}


def test_keys_and_values_of_a_generated_module():
    batches = ref.make_batches(5, 2, 8, seed=60)
    module = generate_metric_module(
        RecMetricModule, _config(state_metrics=[StateMetricEnum.OPTIMIZERS]), batch_size=8, world_size=1, my_rank=0,
        state_metrics_mapping={StateMetricEnum.OPTIMIZERS: _Optimizers()}, device=CPU)
    for b in batches:
        module.update(_model_out(*b))
    out = module.compute()
    per_task = {
        "ne": ["lifetime_ne", "window_ne", "lifetime_logloss", "window_logloss"], "auc": ["window_auc"],
        "auprc": ["window_auprc", "lifetime_auprc"], "mse": ["lifetime_mse", "window_mse", "lifetime_rmse", "window_rmse"],
        **{ns: [f"lifetime_{ns}", f"window_{ns}"] for ns in
           ("ctr", "calibration", "mae", "accuracy", "precision", "recall", "weighted_avg")},
    }
    expected = {f"{ns}-{t}|{n}" for ns, names in per_task.items() for t in "ab" for n in names}
    expected |= {"throughput-throughput|" + k for k in ("total_examples", "attempt_examples",
                                                        "lifetime_throughput", "window_throughput",
                                                        "attempt_throughput")}
    expected |= {"optimizers|lr"}
    assert set(out) == expected
    window = batches[-3:]  # 24 examples = 3 batches of 8
    np.testing.assert_allclose(out["ne-b|window_ne"].item(), ref.ne(*ref.concat(window, 1)), rtol=1e-9)
    np.testing.assert_allclose(out["auc-a|window_auc"].item(), ref.auc(*ref.concat(window, 0)), rtol=1e-6)
    np.testing.assert_allclose(out["calibration-a|lifetime_calibration"].item(),
                               ref.calibration(*ref.concat(batches, 0)), rtol=1e-9)
    assert out["throughput-throughput|total_examples"].item() == 40 and out["optimizers|lr"] == 0.5


def test_update_reads_task_names_and_defaults_weights():
    module = _module(4)
    p = np.array([[0.2, 0.7, 0.4, 0.9]] * 2)
    y = np.array([[0.0, 1.0, 0.0, 1.0]] * 2)
    out = _model_out(p, y, np.ones((2, 4)))
    del out["wb"]  # a missing weight means weight 1
    module.update(out)
    got = module.compute()
    assert got["ne-a|lifetime_ne"].item() == pytest.approx(got["ne-b|lifetime_ne"].item())
    with pytest.raises(ValueError, match=r"Prediction pb not found in model output for task 'b'"):
        module.update({k: v for k, v in out.items() if k != "pb"})
    with pytest.raises(TypeError, match="model_out must be a dict"):
        module.update([1, 2])


def test_should_compute_every_interval():
    module = _module(4, compute_interval_steps=3)
    flags = []
    for _ in range(6):
        module.update(_model_out(np.full((2, 4), 0.5), np.ones((2, 4)), np.ones((2, 4))))
        flags.append(module.should_compute())
    assert flags == [False, False, True, False, False, True]


def test_state_dict_round_trip_mid_window():
    batches = ref.make_batches(7, 2, 8, seed=61)
    unbroken, first = _module(8), _module(8)
    for i, b in enumerate(batches):
        unbroken.update(_model_out(*b))
        if i < 4:
            first.update(_model_out(*b))
    restored = _module(8)
    restored.load_state_dict(first.state_dict())
    assert restored.trained_batches == 4
    for b in batches[4:]:
        restored.update(_model_out(*b))
    got, want = _rec_values(restored.compute()), _rec_values(unbroken.compute())
    attempt = "throughput-throughput|attempt_examples"  # examples of this process only: not restored
    assert got.pop(attempt).item() == 3 * 8 and want.pop(attempt).item() == 7 * 8
    torch.testing.assert_close(got, want)


def test_generate_rejects_bad_configs():
    def gen(cfg, mapping=None):
        return generate_metric_module(RecMetricModule, cfg, 4, 1, 0, mapping or {}, CPU)

    with pytest.raises(ValueError, match=r"task\(s\) \['ghost'\] missing from MetricsConfig.rec_tasks"):
        gen(MetricsConfig(rec_tasks=TASKS, rec_metrics={RecMetricEnum.NE: RecMetricDef(rec_tasks=[RecTaskInfo("ghost")])}))
    with pytest.raises(ValueError, match=r"rec_task_indices \[5\] out of range"):
        gen(MetricsConfig(rec_tasks=TASKS, rec_metrics={RecMetricEnum.NE: RecMetricDef(rec_task_indices=[5])}))
    # SERVING_AE_LOSS is an enum member without a metric class (in TorchRec too).
    with pytest.raises(ValueError, match="serving_ae_loss is not implemented"):
        gen(MetricsConfig(rec_tasks=TASKS, rec_metrics={RecMetricEnum.SERVING_AE_LOSS: RecMetricDef(rec_task_indices=[0])}))
    with pytest.raises(ValueError, match="missing from state_metrics_mapping"):
        gen(MetricsConfig(state_metrics=[StateMetricEnum.OPTIMIZERS]))
    with pytest.raises(TypeError, match="mapping"):
        REC_METRICS_MAPPING[RecMetricEnum.NDCG] = None  # read-only


def test_pre_compute_states_round_trip_and_async_compute():
    batches = ref.make_batches(3, 2, 8, seed=62)
    module = _module(8)
    for b in batches:
        module.update(_model_out(*b))
    fresh = _module(8)
    fresh.load_pre_compute_states(module.get_pre_compute_states())
    torch.testing.assert_close(fresh.local_compute().resolve(), module.local_compute().resolve())
    fresh.update(_model_out(*batches[0]))  # loaded states keep accumulating
    assert fresh.trained_batches == 1
    deferred = module.async_compute()
    assert deferred.is_resolved()
    torch.testing.assert_close(_rec_values(deferred.resolve()), _rec_values(module.compute().resolve()))
    module.shutdown()


def test_compute_interval_adapts_to_min_and_max_seconds(monkeypatch):
    class Clock:
        now = 0.0

        def monotonic(self):
            return self.now

    clock = Clock()
    monkeypatch.setattr(mm, "time", clock)
    module = _module(4, compute_interval_steps=10, min_compute_interval=2.0, max_compute_interval=20.0)
    step = _model_out(np.full((2, 4), 0.5), np.ones((2, 4)), np.ones((2, 4)))
    module.compute()
    for _ in range(10):
        module.update(step)
    clock.now += 1.0  # 10 steps in 1 s: too often -> 20 steps (2 s) per compute
    module.compute()
    assert module.compute_interval_steps == 20
    for _ in range(20):
        module.update(step)
    clock.now += 40.0  # 20 steps in 40 s: too rare -> 10 steps (20 s)
    module.compute()
    assert module.compute_interval_steps == 10


# -- 2 ranks (gloo) against one process over the union of the data -------------------------------------------

B = 6  # per rank; the single-process reference sees 2 * B per step. Window 24 = 2 steps either way.


def _two_rank_checks(rank, world_size, batches):
    cols = slice(rank * B, (rank + 1) * B)
    out = {}
    for mode in (RecComputeMode.UNFUSED_TASKS_COMPUTATION, RecComputeMode.FUSED_TASKS_COMPUTATION):
        m = _module(B, world_size, rank, mode=mode, compute_on_all_ranks=True)
        for b in batches:
            m.update(_model_out(*b, cols=cols))
        out[mode.name] = m.compute()
    # default: only rank 0 reports rec metrics (every rank still joins the sync)
    m = _module(B, world_size, rank, should_validate_update=True)
    for b in batches:
        m.update(_model_out(*b, cols=cols))
    out["rank0_only"] = m.compute()
    local = m.local_compute()
    m.sync()
    out["synced_local"] = m.local_compute().resolve()
    m.unsync()
    # lifetime_auprc averages the windows of every compute so far (as TorchRec's): it moves with each call
    assert all(torch.equal(local[k], v) for k, v in m.local_compute().items() if not k.endswith("lifetime_auprc")), \
        "unsync must restore local states"
    out["local"] = local.resolve()
    fresh = _module(B, world_size, rank)
    fresh.load_pre_compute_states(m.get_pre_compute_states())
    out["pre_compute"] = fresh.local_compute().resolve()
    return out


def _without_lifetime_auprc(values):
    return {k: v for k, v in values.items() if not k.endswith("lifetime_auprc")}


def _union_reference(batches):
    """One process over both ranks' columns of every batch."""
    reference = _module(2 * B)
    for b in batches:
        reference.update(_model_out(*b))
    return reference.compute()


@pytest.mark.dist
def test_two_ranks_equal_one_process_over_the_union():
    batches = ref.make_batches(5, 2, 2 * B, seed=63)
    want = _rec_values(_union_reference(batches))
    results = run_multiprocess(_two_rank_checks, 2, batches, timeout_s=240)
    for rank, res in enumerate(results):
        torch.testing.assert_close(_rec_values(res["UNFUSED_TASKS_COMPUTATION"]), want,
                                   msg=lambda m: f"rank {rank} unfused: {m}")
        # fused, lifetime_auprc averages over the tasks together (TorchRec's definition; test_auprc checks it)
        torch.testing.assert_close(_without_lifetime_auprc(_rec_values(res["FUSED_TASKS_COMPUTATION"])),
                                   _without_lifetime_auprc(want), msg=lambda m: f"rank {rank} fused: {m}")
        rec_want = {k: v for k, v in want.items() if not k.startswith("throughput")}
        # synced_local follows other computes on this rank: its lifetime_auprc averages those windows too
        torch.testing.assert_close(_without_lifetime_auprc(_unlocal(res["synced_local"])),
                                   _without_lifetime_auprc(rec_want))
        torch.testing.assert_close(_unlocal(res["pre_compute"]), rec_want)
        local = _unlocal(res["local"])
        assert local.keys() == rec_want.keys()
        assert not all(torch.equal(local[k], rec_want[k]) for k in rec_want)  # local really is local
    torch.testing.assert_close(_rec_values(results[0]["rank0_only"]), want)
    assert set(results[1]["rank0_only"]) == {"throughput-throughput|total_examples",
                                             "throughput-throughput|attempt_examples"} | set(TIMING_KEYS)


def _two_rank_offloaded(rank, world_size, batches):
    import torch.distributed as dist

    from recsys_lib.metrics.cpu_offloaded_metric_module import CPUOffloadedRecMetricModule

    cols = slice(rank * B, (rank + 1) * B)
    m = generate_metric_module(CPUOffloadedRecMetricModule, _config(), batch_size=B, world_size=world_size,
                               my_rank=rank, state_metrics_mapping={}, device=CPU,
                               module_kwargs={"model_out_device": CPU, "update_batch_size": 2})
    gathered_over = []
    gather = m.comms_module.get_pre_compute_states
    m.comms_module.get_pre_compute_states = lambda pg=None: gathered_over.append(pg) or gather(pg)
    try:
        for b in batches:
            m.update(_model_out(*b, cols=cols))
        out = m.compute().resolve()
    finally:
        m.shutdown()
    group = m.cpu_process_group
    assert gathered_over == [group] and group is not None and group != dist.group.WORLD
    assert dist.get_backend(group) == "gloo"
    return out


@pytest.mark.dist
def test_cpu_offloaded_module_at_two_ranks_equals_one_process_over_the_union():
    """The offloaded module gathers the ranks' states over its own gloo group, then computes once."""
    batches = ref.make_batches(5, 2, 2 * B, seed=64)
    want = {k: v for k, v in _union_reference(batches).items() if not k.startswith("throughput")}
    results = run_multiprocess(_two_rank_offloaded, 2, batches, timeout_s=240)
    torch.testing.assert_close({k: v for k, v in results[0].items() if not k.startswith("throughput")}, want)
    assert not any(k in want for k in results[1])  # rank 1 joins the gather but reports no rec metrics
