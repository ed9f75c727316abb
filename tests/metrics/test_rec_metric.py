import numpy as np
import pytest
import torch

from recsys_lib.metrics.auc import AUCMetric
from recsys_lib.metrics.ctr import CTRMetric
from recsys_lib.metrics.metric_module import REC_METRICS_MAPPING
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo, SessionMetricDef
from recsys_lib.metrics.ne import NEMetric
from recsys_lib.metrics.rec_metric import RecMetricList
from tests.metrics import reference as ref

TASKS = [RecTaskInfo(name="a"), RecTaskInfo(name="b"), RecTaskInfo(name="c")]


def _metric(cls, tasks=TASKS, **kw):
    kw.setdefault("window_size", 20)
    return cls(world_size=1, my_rank=0, batch_size=8, tasks=tasks, **kw)


# Tasks with everything a metric may ask for: a tensor (tensor_weighted_avg) and a session (session metrics).
RICH_TASKS = [
    RecTaskInfo(name=n, tensor_name=f"{n}_tensor", session_metric_def=SessionMetricDef("session", top_threshold=2))
    for n in "abc"
]
# Extra constructor arguments some metrics need.
METRIC_KWARGS = {"MULTICLASS_RECALL": {"number_of_classes": 3}, "SEGMENTED_NE": {"num_groups": 3}}


def _required_inputs(names, batch_size, seed):
    g = torch.Generator().manual_seed(seed)
    per_name = {
        "grouping_keys": lambda: torch.randint(0, 3, (batch_size,), generator=g),
        "session_id": lambda: torch.arange(batch_size) // 3,
        "session": lambda: torch.arange(batch_size) // 3,
        "num_candidates": lambda: torch.tensor([3, 3, 2]),
    }
    return {n: per_name.get(n, lambda: torch.rand(batch_size, generator=g, dtype=torch.double))() for n in names}


@pytest.mark.parametrize("enum", list(REC_METRICS_MAPPING), ids=str)
def test_fused_and_unfused_give_equal_numbers(enum):
    batches = ref.make_batches(5, 3, 8, seed=50)
    if enum.name == "MULTICLASS_RECALL":  # class scores (n_tasks, B, n_classes) and integer labels
        batches = [(np.repeat(p[..., None], 3, -1) * np.array([1.0, 0.5, 0.8]), np.floor(y * 2.9), w)
                   for p, y, w in batches]
    out = {}
    for mode in RecComputeMode:
        m = _metric(REC_METRICS_MAPPING[enum], tasks=RICH_TASKS, compute_mode=mode, **METRIC_KWARGS.get(enum.name, {}))
        assert len(m._metrics_computations) == (3 if mode == RecComputeMode.UNFUSED_TASKS_COMPUTATION else 1)
        required = sorted(m.get_required_inputs())
        for i, (p, y, w) in enumerate(batches):
            as_dict = mode != RecComputeMode.FUSED_TASKS_COMPUTATION
            m.update(
                predictions={t: torch.tensor(p[j]) for j, t in enumerate("abc")} if as_dict else torch.tensor(p),
                labels={t: torch.tensor(y[j]) for j, t in enumerate("abc")} if as_dict else torch.tensor(y),
                weights={t: torch.tensor(w[j]) for j, t in enumerate("abc")} if as_dict else torch.tensor(w),
                required_inputs=_required_inputs(required, 8, seed=i),
            )
        out[mode] = m.compute()
    base = out[RecComputeMode.UNFUSED_TASKS_COMPUTATION]
    assert len(base) >= 3 and all(k.split("|")[0].split("-", 1)[1] in "abc" for k in base)
    for mode, got in out.items():
        assert set(got) == set(base)
        for k in base:
            if k.endswith("_qps"):  # wall-clock rates differ run to run
                continue
            if k.endswith("lifetime_auprc") and mode != RecComputeMode.UNFUSED_TASKS_COMPUTATION:
                continue  # fused: one weighted mean over all tasks, by TorchRec's definition (test_auprc)
            torch.testing.assert_close(got[k], base[k], msg=f"{mode} {k}")


def test_input_forms_agree():
    p, y, w = ref.make_batches(1, 1, 8, seed=51)[0]
    forms = [
        dict(predictions=torch.tensor(p[0]), labels=torch.tensor(y[0]), weights=torch.tensor(w[0])),
        dict(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w)),
        dict(predictions=torch.tensor(p[0])[:, None], labels=torch.tensor(y[0])[:, None],
             weights=torch.tensor(w[0])[:, None]),
        dict(predictions={"a": torch.tensor(p[0])}, labels={"a": torch.tensor(y[0])}, weights={"a": torch.tensor(w[0])}),
    ]
    values = []
    for f in forms:
        m = _metric(NEMetric, tasks=TASKS[:1])
        m.update(**f)
        values.append(m.compute()["ne-a|lifetime_ne"])
    for v in values:
        np.testing.assert_allclose(v.item(), ref.ne(p[0], y[0], w[0]), rtol=1e-10)


def test_no_weights_and_unweighted_task_weigh_every_example_one():
    p, y, w = ref.make_batches(1, 2, 8, seed=52)[0]
    ones = np.ones(8)
    m = _metric(CTRMetric, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b", weighted=False)])
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w))
    out = m.compute()
    np.testing.assert_allclose(out["ctr-a|lifetime_ctr"].item(), ref.ctr(p[0], y[0], w[0]))
    np.testing.assert_allclose(out["ctr-b|lifetime_ctr"].item(), ref.ctr(p[1], y[1], ones))
    m2 = _metric(CTRMetric, tasks=TASKS[:1])
    m2.update(predictions=torch.tensor(p[0]), labels=torch.tensor(y[0]), weights=None)
    np.testing.assert_allclose(m2.compute()["ctr-a|lifetime_ctr"].item(), ref.ctr(p[0], y[0], ones))


def test_bad_inputs_raise_clear_errors():
    m = _metric(NEMetric, tasks=TASKS[:2])
    good = {"a": torch.rand(4), "b": torch.rand(4)}
    with pytest.raises(ValueError, match=r"predictions \(2, 4\), labels \(2, 5\)"):
        m.update(predictions=torch.rand(2, 4), labels=torch.rand(2, 5), weights=None)
    with pytest.raises(ValueError, match=r"unknown task name\(s\) \['typo'\]"):
        m.update(predictions={**good, "typo": torch.rand(4)}, labels=good, weights=None)
    with pytest.raises(ValueError, match=r"missing task\(s\) \['b'\]"):
        m.update(predictions={"a": torch.rand(4)}, labels=good, weights=None)
    with pytest.raises(ValueError, match=r"shape \(3, 4\); expected \(n_tasks=2, batch\)"):
        m.update(predictions=torch.rand(3, 4), labels=torch.rand(3, 4), weights=None)
    with pytest.raises(ValueError, match="different batch sizes"):
        m.update(predictions={"a": torch.rand(4), "b": torch.rand(3)}, labels=good, weights=None)
    with pytest.raises(TypeError, match="torch.Tensor"):
        m.update(predictions=[0.1, 0.2], labels=good, weights=None)
    with pytest.raises(TypeError, match="unexpected arguments.*'no_such_option'"):
        _metric(NEMetric, no_such_option=1)
    with pytest.raises(ValueError, match="duplicate task names"):
        _metric(NEMetric, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="a")])
    with pytest.raises(ValueError, match="at least one RecTaskInfo"):
        _metric(NEMetric, tasks=[])
    with pytest.raises(ValueError, match="window_size"):
        _metric(NEMetric, window_size=0)
    with pytest.raises(ValueError, match="my_rank"):
        NEMetric(world_size=2, my_rank=2, batch_size=4, tasks=TASKS)


@pytest.mark.parametrize("cls", [NEMetric, AUCMetric], ids=["sum_states", "buffered"])
def test_state_dict_round_trip_mid_window(cls):
    batches = ref.make_batches(7, 3, 8, seed=53)
    unbroken = _metric(cls, window_size=24)
    ref.feed(unbroken, batches, "abc")
    first = _metric(cls, window_size=24)
    ref.feed(first, batches[:4], "abc")
    sd = first.state_dict()
    restored = _metric(cls, window_size=24)
    restored.load_state_dict(sd)  # strict: every key is known
    torch.testing.assert_close(restored.local_compute(), first.local_compute())
    ref.feed(restored, batches[4:], "abc")  # the window now spans the checkpoint
    out = restored.compute()
    assert set(out) == set(unbroken.compute())
    torch.testing.assert_close(out, unbroken.compute())


def test_reset_clears_lifetime_and_window():
    batches = ref.make_batches(4, 3, 8, seed=54)
    m = _metric(NEMetric)
    ref.feed(m, batches[:2], "abc")
    m.reset()
    ref.feed(m, batches[2:], "abc")
    np.testing.assert_allclose(m.compute()["ne-b|lifetime_ne"].item(), ref.ne(*ref.concat(batches[2:], 1)))


def test_should_validate_update_hides_tasks_without_weight():
    m = _metric(CTRMetric, tasks=TASKS[:2], should_validate_update=True, compute_mode=RecComputeMode.FUSED_TASKS_COMPUTATION)
    m.update(predictions=torch.rand(2, 4), labels=torch.ones(2, 4), weights=torch.tensor([[1.0] * 4, [0.0] * 4]))
    assert set(m.compute()) == {"ctr-a|lifetime_ctr", "ctr-a|window_ctr"}


def test_other_ranks_get_nothing_unless_compute_on_all_ranks():
    # No process group here, so compute() needs no peers; rank 1 must still return nothing by default.
    for on_all, expect in ((False, 0), (True, 2)):
        m = NEMetric(world_size=2, my_rank=1, batch_size=4, tasks=TASKS[:1], compute_on_all_ranks=on_all)
        m.update(predictions=torch.rand(4), labels=torch.ones(4), weights=None)
        assert len(m.compute()) == expect
        assert len(m.local_compute()) == 2


def test_window_is_per_rank_share_of_the_global_window():
    m = NEMetric(world_size=4, my_rank=0, batch_size=4, tasks=TASKS[:1], window_size=30)
    assert m._metrics_computations[0]._window.max_size == 8  # ceil(30 / 4)


def test_metric_list_gives_each_metric_its_tasks():
    ne = _metric(NEMetric, tasks=TASKS[:1])
    ctr = _metric(CTRMetric, tasks=TASKS[1:2])
    lst = RecMetricList([ne, ctr])
    assert len(lst) == 2 and lst[1] is ctr
    preds = {t.name: torch.rand(4) for t in TASKS}
    labels = {t.name: torch.ones(4) for t in TASKS}
    lst.update(predictions=preds, labels=labels, weights=None)
    assert set(lst.compute()) == {"ne-a|lifetime_ne", "ne-a|window_ne", "ctr-b|lifetime_ctr", "ctr-b|window_ctr"}
    assert sum(ne.get_memory_usage().values()) > 0


def test_fused_update_limit_applies_held_back_updates_as_one_batch():
    batches = ref.make_batches(5, 3, 8, seed=55)
    plain = _metric(NEMetric, window_size=16)
    held = _metric(NEMetric, window_size=16, fused_update_limit=2)
    ref.feed(plain, batches, "abc")
    ref.feed(held, batches[:4], "abc")
    assert held._metrics_computations[0].weighted_num_samples.item() > 0  # two chunks of 2 applied
    ref.feed(held, batches[4:], "abc")
    assert len(held._pending) == 1
    sd = held.state_dict()  # applies the pending update
    assert not held._pending
    out = held.compute()
    for t in "abc":
        torch.testing.assert_close(out[f"ne-{t}|lifetime_ne"], plain.compute()[f"ne-{t}|lifetime_ne"])
    # the window moves in chunks: 16 examples hold the newest chunk (batch 4) but not also chunk [2, 3]
    np.testing.assert_allclose(out["ne-a|window_ne"].item(), ref.ne(*ref.concat(batches[4:], 0)), rtol=1e-10)
    restored = _metric(NEMetric, window_size=16, fused_update_limit=2)
    restored.load_state_dict(sd)
    torch.testing.assert_close(restored.compute(), out)


def test_rec_metric_module_drops_an_old_trained_batches_key():
    from recsys_lib.metrics.metric_module import RecMetricModule

    m = RecMetricModule(batch_size=4, world_size=1)
    m.trained_batches = 5
    sd = m.state_dict()
    sd["_trained_batches"] = torch.tensor(99)
    fresh = RecMetricModule(batch_size=4, world_size=1)
    fresh.load_state_dict(sd)  # strict: passes only because the hook removed the stale key
    assert fresh.trained_batches == 5


def test_clone_update_inputs_copies_every_tensor():
    from recsys_lib.metrics.ne import NEMetric

    m = NEMetric(world_size=1, my_rank=0, batch_size=2, tasks=[RecTaskInfo(name="t")])
    p, y = torch.tensor([0.2, 0.7]), {"t": torch.tensor([0.0, 1.0])}
    req = {"k": torch.tensor([1, 2])}
    p2, y2, w2, kw = m.clone_update_inputs(p, y, None, required_inputs=req)
    assert w2 is None
    for a, b in ((p, p2), (y["t"], y2["t"]), (req["k"], kw["required_inputs"]["k"])):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
