"""Session, group and threshold metrics against independent references (plain python loops, torchmetrics)."""

import numpy as np
import pytest
import torch
import torchmetrics.functional as tmf
from torchmetrics.functional.retrieval import retrieval_normalized_dcg

from recsys_lib.metrics.gauc import GAUCMetric
from recsys_lib.metrics.hindsight_target_pr import HindsightTargetPRMetric
from recsys_lib.metrics.metrics_config import RecTaskInfo, SessionMetricDef
from recsys_lib.metrics.multi_label_precision import MultiLabelPrecisionMetric
from recsys_lib.metrics.multiclass_recall import MulticlassRecallMetric
from recsys_lib.metrics.ndcg import NDCGMetric
from recsys_lib.metrics.output import OutputMetric
from recsys_lib.metrics.precision_session import PrecisionSessionMetric
from recsys_lib.metrics.rauc import count_reverse_pairs_divide_and_conquer, RAUCMetric
from recsys_lib.metrics.recall_session import ranking_within_session, RecallSessionMetric
from recsys_lib.metrics.scalar import ScalarMetric
from recsys_lib.metrics.segmented_ne import SegmentedNEMetric
from recsys_lib.metrics.tensor_weighted_avg import TensorWeightedAvgMetric
from recsys_lib.metrics.tower_qps import TowerQPSMetric
from tests.metrics import reference as ref

A = [RecTaskInfo(name="a")]


def _m(cls, tasks=A, **kw):
    kw.setdefault("window_size", 1000)
    return cls(world_size=1, my_rank=0, batch_size=12, tasks=tasks, **kw)


def _data(seed, n=12, ties=False):
    g = np.random.default_rng(seed)
    p = g.random(n)
    if ties:
        p = np.round(p * 3) / 3
    return p, (g.random(n) < 0.5).astype(float), g.random(n) + 0.1


def test_gauc_is_the_mean_of_per_session_weighted_auc():
    p, y, w = _data(1, ties=True)
    sizes = [5, 4, 3]
    m = _m(GAUCMetric)
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w),
             num_candidates=torch.tensor(sizes))
    aucs, start = [], 0
    for n in sizes:
        s = slice(start, start + n)
        start += n
        if 0 < y[s].sum() < n:
            aucs.append(ref.auc(p[s], y[s], w[s]))
    out = m.compute()
    assert out["gauc-a|lifetime_gauc"].item() == pytest.approx(np.mean(aucs))
    assert out["gauc-a|window_gauc_num_samples"].item() == len(aucs)


def test_rauc_against_pair_count_and_merge_sort():
    p, _, w = _data(2)
    y = np.arange(12.0)[::-1] * 0.5 + np.round(p)
    m = _m(RAUCMetric)
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w))
    inverted = sum((y[i] - y[j]) * (p[i] - p[j]) < 0 for i in range(12) for j in range(i + 1, 12))
    assert m.compute()["rauc-a|window_rauc"].item() == pytest.approx(1 - inverted / 66)
    order = np.argsort(y, kind="stable")
    assert count_reverse_pairs_divide_and_conquer(list(p[order])) == sum(
        p[order][i] > p[order][j] for i in range(12) for j in range(i + 1, 12))


def _sessions():
    return torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2])


def test_ndcg_matches_torchmetrics_per_session():
    p, _, _ = _data(3)
    y = np.array([3, 0, 1, 0, 0, 2, 1, 1, 0, 0, 4, 2], dtype=float)
    m = _m(NDCGMetric, report_ndcg_as_decreasing_curve=False, exponential_gain=False)
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.ones(12),
             required_inputs={"session_id": _sessions()})
    s = _sessions()
    want = np.mean([retrieval_normalized_dcg(torch.tensor(p)[s == k], torch.tensor(y)[s == k]).item()
                    for k in range(3)])
    assert m.compute()["ndcg-a|lifetime_ndcg"].item() == pytest.approx(want)
    dec = _m(NDCGMetric, k=2)
    dec.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.ones(12),
               required_inputs={"session_id": _sessions()})
    want_k = np.mean([retrieval_normalized_dcg(torch.tensor(p)[s == k], torch.tensor(y)[s == k], top_k=2).item()
                      for k in range(3)])
    assert dec.compute()["ndcg-a|lifetime_ndcg"].item() == pytest.approx(1 - want_k)


def test_session_precision_and_recall_take_the_top_of_each_session():
    p, y, w = _data(4, ties=True)
    tasks = [RecTaskInfo(name="a", session_metric_def=SessionMetricDef("sess", top_threshold=2))]
    s = _sessions()
    prec, rec = _m(PrecisionSessionMetric, tasks), _m(RecallSessionMetric, tasks)
    for m in (prec, rec):
        m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w),
                 required_inputs={"sess": s})
    top = np.array([sum(p[j] > p[i] for j in range(12) if s[j] == s[i]) < 2 for i in range(12)])
    tp = (w * top * y).sum()
    assert prec.compute()["precision_session_level-a|lifetime_precision_session_level"].item() == pytest.approx(
        tp / (w * top).sum())
    assert rec.compute()["recall_session_level-a|window_recall_session_level"].item() == pytest.approx(
        tp / (w * y).sum())
    assert ranking_within_session(torch.tensor([0.5, 0.5, 0.2, 0.7]), torch.tensor([0, 0, 0, 1])).tolist() == [1, 1, 0, 0]


def test_multiclass_recall_at_k_matches_torchmetrics_top_k_accuracy():
    g = torch.Generator().manual_seed(5)
    scores, labels = torch.rand(12, 4, generator=g, dtype=torch.double), torch.randint(0, 4, (12,), generator=g)
    m = _m(MulticlassRecallMetric, number_of_classes=4)
    m.update(predictions={"a": scores}, labels={"a": labels.double()}, weights=None)
    got = m.compute()["multiclass_recall-a|lifetime_multiclass_recall"]
    want = [tmf.accuracy(scores, labels, task="multiclass", num_classes=4, top_k=k, average="micro").item()
            for k in range(1, 5)]
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.double))


def test_multi_label_precision_decodes_bit_masks():
    preds, labels = torch.tensor([5.0, 3.0, 1.0, 0.0]), torch.tensor([5.0, 1.0, 3.0, 2.0])
    m = _m(MultiLabelPrecisionMetric, num_labels=3, label_names=["x", "y", "z"])
    m.update(predictions=preds, labels=labels, weights=torch.tensor([1.0, 2.0, 1.0, 1.0]))
    out = m.compute()
    bits = lambda t, j: ((t.long() >> j) & 1).double()  # noqa: E731
    for j, name in enumerate("xyz"):
        want = tmf.precision(bits(preds, j), bits(labels, j).long(), task="binary") if bits(preds, j).sum() else 0.0
        if j == 0:  # weights matter: example 1 (weight 2) predicts x and has it
            want = 4.0 / 4.0
        assert out[f"multi_label_precision-a|lifetime_multi_label_precision{name}"].item() == pytest.approx(float(want))


def test_segmented_ne_is_ne_per_group():
    p, y, w = _data(6)
    groups = torch.tensor([0, 1, 2] * 4)
    m = _m(SegmentedNEMetric, num_groups=3, include_logloss=True)
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w),
             required_inputs={"grouping_keys": groups})
    out = m.compute()
    for g in range(3):
        sel = (groups == g).numpy()
        assert out[f"segmented_ne-a|lifetime_segmented_ne_{g}"].item() == pytest.approx(ref.ne(p[sel], y[sel], w[sel]))
        assert out[f"segmented_ne-a|window_logloss_{g}"].item() == pytest.approx(
            ref.logloss(p[sel], y[sel], w[sel]) / np.log(2))  # cross entropy in bits


def test_hindsight_target_pr_picks_the_lowest_threshold_reaching_the_target():
    p, y, w = _data(7)
    m = _m(HindsightTargetPRMetric, target_precision=0.6)
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w))
    out = m.compute()
    for t in np.linspace(0, 1, 1000):
        sel = p > t
        tp, fp = (w * y * sel).sum(), (w * (1 - y) * sel).sum()
        if tp + fp > 0 and tp / (tp + fp) >= 0.6:
            break
    assert out["hindsight_target_pr-a|lifetime_hindsight_target_pr"].item() == pytest.approx(t)
    assert out["hindsight_target_pr-a|lifetime_hindsight_target_precision"].item() == pytest.approx(tp / (tp + fp))
    assert out["hindsight_target_pr-a|window_hindsight_target_recall"].item() == pytest.approx(tp / (w * y).sum())


def test_scalar_output_and_tensor_weighted_avg():
    s = _m(ScalarMetric, window_size=2)
    for k in range(3):
        s.update(predictions=torch.rand(4), labels=torch.full((4,), float(k)), weights=None)
    out = s.compute()
    assert out["scalar-a|lifetime_scalar"].item() == 2.0 and out["scalar-a|window_scalar"].item() == 1.5
    assert not s.state_dict() or all("extra" in k for k in s.state_dict())
    o = _m(OutputMetric)
    o.update(predictions=torch.rand(4), labels=torch.rand(4), weights=None,
             required_inputs={"latest_imp": torch.tensor([1.0, 3.0]), "total_latest_imp": torch.tensor([4.0])})
    assert o.compute() == {"output-a|output_latest_imp": torch.tensor(2.0, dtype=torch.double),
                           "output-a|output_total_latest_imp": torch.tensor(4.0, dtype=torch.double)}
    tasks = [RecTaskInfo(name="a", tensor_name="x"), RecTaskInfo(name="b", tensor_name="y", weighted=False)]
    t = _m(TensorWeightedAvgMetric, tasks)
    assert t.get_required_inputs() == {"x", "y"}
    x, yv, w = torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 5.0, 9.0]), torch.tensor([1.0, 0.0, 3.0])
    t.update(predictions=torch.rand(2, 3), labels=torch.rand(2, 3), weights=torch.stack([w, w]),
             required_inputs={"x": x, "y": yv})
    out = t.compute()
    assert out["weighted_avg-a|lifetime_weighted_avg"].item() == pytest.approx(10.0 / 4.0)
    assert out["weighted_avg-b|window_weighted_avg"].item() == pytest.approx(6.0)  # weighted=False: plain mean


def test_tower_qps_counts_examples_after_warmup(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 4.0])
    monkeypatch.setattr("recsys_lib.metrics.tower_qps.time.monotonic", lambda: next(clock))
    m = _m(TowerQPSMetric, warmup_steps=1)
    for n in (4, 6, 8, 2):
        m.update(predictions=torch.rand(n), labels=torch.rand(n), weights=None)
    out = m.compute()
    assert out["qps-a|total_examples"].item() == 20
    assert out["qps-a|lifetime_qps"].item() == pytest.approx(16 / 4.0)
