"""The sum-state metrics added for TorchRec parity, each against an independent numpy formula (lifetime over
all batches, window over the last batches), plus edge cases (ties, zero weights, empty windows)."""

import math

import numpy as np
import pytest
import torch

from recsys_lib.metrics.average import AverageMetric
from recsys_lib.metrics.cali_free_ne import CaliFreeNEMetric
from recsys_lib.metrics.calibration_with_recalibration import RecalibratedCalibrationMetric
from recsys_lib.metrics.metrics_config import RecTaskInfo
from recsys_lib.metrics.ne_positive import NEPositiveMetric
from recsys_lib.metrics.ne_with_recalibration import RecalibratedNEMetric
from recsys_lib.metrics.nmse import NMSEMetric
from recsys_lib.metrics.num_missing_labels import NumMissingLabelsMetric
from recsys_lib.metrics.num_positive_samples import NumPositiveSamplesMetric
from recsys_lib.metrics.serving_calibration import ServingCalibrationMetric
from recsys_lib.metrics.serving_ne import ServingNEMetric
from recsys_lib.metrics.sum_weights import SumWeightsMetric
from recsys_lib.metrics.unweighted_ne import UnweightedNEMetric
from recsys_lib.metrics.weighted_sum_predictions import WeightedSumPredictionsMetric
from recsys_lib.metrics.xauc import XAUCMetric
from tests.metrics import reference as ref

ETA = 1e-12


def _entropy(pos, neg, rate, log):
    return -(pos * log(max(rate, ETA)) + neg * log(1 - rate))


def ne_positive(p, y, w):
    ce_pos = -(w * y * np.log(np.clip(p, ETA, 1 - ETA))).sum()
    pos, total = (w * y).sum(), w.sum()
    return ce_pos / _entropy(pos, total - pos, pos / total, np.log)


def cali_free_ne(p, y, w):
    pos, total = (w * y).sum(), w.sum()
    return ref.ne(p, y, w) / _entropy(pos, total - pos, (w * p).sum() / total, np.log2)


def recalibrate(p, c):
    return c * p / (c * p + 1 - p)


def nmse(p, y, w):
    return (w * (y - p) ** 2).sum() / (w * (y - 1.0) ** 2).sum()


CASES = {
    "average": (AverageMetric, "average", ["label_average", "prediction_average"],
                [lambda p, y, w: (w * y).sum() / w.sum(), lambda p, y, w: (w * p).sum() / w.sum()], {}),
    "sum_weights": (SumWeightsMetric, "sum_weights", ["sum_weights"], [lambda p, y, w: w.sum()], {}),
    "num_positive_samples": (NumPositiveSamplesMetric, "num_positive_samples", ["num_positive_samples"],
                             [lambda p, y, w: (w * y).sum()], {}),
    "weighted_sum_predictions": (WeightedSumPredictionsMetric, "weighted_sum_predictions",
                                 ["weighted_sum_predictions"], [lambda p, y, w: (w * p).sum()], {}),
    "ne_positive": (NEPositiveMetric, "ne_positive", ["ne_positive"], [ne_positive], {}),
    "unweighted_ne": (UnweightedNEMetric, "unweighted_ne", ["unweighted_ne"],
                      [lambda p, y, w: ref.ne(p, y, np.ones_like(w))], {}),
    "cali_free_ne": (CaliFreeNEMetric, "cali_free_ne", ["cali_free_ne"], [cali_free_ne], {}),
    "recalibrated_ne": (RecalibratedNEMetric, "recalibrated_ne", ["ne"],
                        [lambda p, y, w: ref.ne(recalibrate(p, 3.0), y, w)], {"recalibration_coefficient": 3.0}),
    "recalibrated_calibration": (RecalibratedCalibrationMetric, "recalibrated_calibration", ["calibration"],
                                 [lambda p, y, w: ref.calibration(recalibrate(p, 0.5), y, w)],
                                 {"recalibration_coefficient": 0.5}),
    "nmse": (NMSEMetric, "nmse", ["nmse", "nrmse"], [nmse, lambda p, y, w: math.sqrt(nmse(p, y, w))], {}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("ties", [False, True])
def test_lifetime_and_window_against_numpy(case, ties):
    cls, namespace, names, fns, kwargs = CASES[case]
    batches = ref.make_batches(5, 2, 8, seed=70, ties=ties)
    ref.check_values(cls, namespace, names, fns, window_batches=2, window_size=20, batches=batches, **kwargs)


def test_serving_metrics_count_served_examples_and_ignore_zero_weights():
    batches = ref.make_batches(3, 1, 8, seed=71)
    for p, y, w in batches:
        w[:, :3] = 0.0  # unserved
        y[:, 0] = 7.0  # any label is fine where the weight is 0
    ne = ServingNEMetric(world_size=1, my_rank=0, batch_size=8, tasks=[RecTaskInfo(name="a")], window_size=16)
    cal = ServingCalibrationMetric(world_size=1, my_rank=0, batch_size=8, tasks=[RecTaskInfo(name="a")], window_size=16)
    for m in (ne, cal):
        ref.feed(m, batches, ["a"])
    served = [(p[0][3:], y[0][3:], w[0][3:]) for p, y, w in batches]
    life = tuple(np.concatenate([s[k] for s in served]) for k in range(3))
    win = tuple(np.concatenate([s[k] for s in served[-2:]]) for k in range(3))
    out = {**ne.compute(), **cal.compute()}
    assert out["serving_ne-a|lifetime_ne"].item() == pytest.approx(ref.ne(*life))
    assert out["serving_ne-a|window_ne"].item() == pytest.approx(ref.ne(*win))
    assert out["serving_calibration-a|window_calibration"].item() == pytest.approx(ref.calibration(*win))
    for ns in ("serving_ne", "serving_calibration"):
        assert out[f"{ns}-a|total_examples"].item() == 15 and out[f"{ns}-a|total_examples"].dtype == torch.long


def test_num_missing_labels_counts_weighted_nan_labels():
    m = NumMissingLabelsMetric(world_size=1, my_rank=0, batch_size=4, tasks=[RecTaskInfo(name="a")])
    m.update(predictions=torch.rand(4), labels=torch.tensor([1.0, float("nan"), 0.0, float("nan")]),
             weights=torch.tensor([1.0, 2.0, 3.0, 0.5]))
    assert m.compute()["num_missing_labels-a|lifetime_num_missing_labels"].item() == 2.5


def _xauc_pairs(p, y, w):
    num = den = 0.0
    for i in range(len(p)):
        for j in range(i + 1, len(p)):
            den += w[i] * w[j]
            num += w[i] * w[j] * (np.sign(y[i] - y[j]) == np.sign(p[i] - p[j]))
    return num, den


@pytest.mark.parametrize("ties", [False, True])
def test_xauc_counts_concordant_pairs_within_each_batch(ties):
    batches = ref.make_batches(4, 2, 6, seed=72, ties=ties)
    batches = [(p, np.round(y + p * 2), w) for p, y, w in batches]  # regression-like labels with ties
    m = XAUCMetric(world_size=1, my_rank=0, batch_size=6, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b")],
                   window_size=12)
    ref.feed(m, batches, ["a", "b"])
    out = m.compute()
    for i, t in enumerate("ab"):
        sums = [_xauc_pairs(p[i], y[i], w[i]) for p, y, w in batches]
        life = sum(s[0] for s in sums) / sum(s[1] for s in sums)
        win = sum(s[0] for s in sums[-2:]) / sum(s[1] for s in sums[-2:])
        assert out[f"xauc-{t}|lifetime_xauc"].item() == pytest.approx(life)
        assert out[f"xauc-{t}|window_xauc"].item() == pytest.approx(win)


def test_zero_weights_give_zero_not_nan_for_ratio_metrics():
    m = AverageMetric(world_size=1, my_rank=0, batch_size=3, tasks=[RecTaskInfo(name="a")])
    m.update(predictions=torch.rand(3), labels=torch.ones(3), weights=torch.zeros(3))
    out = m.compute()
    assert out["average-a|lifetime_label_average"].item() == 0.0
    assert out["average-a|window_prediction_average"].item() == 0.0


@pytest.mark.parametrize("cls", [NEPositiveMetric, UnweightedNEMetric, CaliFreeNEMetric, RecalibratedNEMetric])
def test_ne_family_rejects_labels_outside_unit_interval(cls):
    m = cls(world_size=1, my_rank=0, batch_size=3, tasks=[RecTaskInfo(name="a")])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\]"):
        m.update(predictions=torch.rand(3), labels=torch.tensor([0.0, 2.0, 1.0]), weights=torch.ones(3))


def test_recalibration_coefficient_must_be_positive():
    with pytest.raises(ValueError, match="recalibration_coefficient must be > 0"):
        RecalibratedNEMetric(world_size=1, my_rank=0, batch_size=3, tasks=[RecTaskInfo(name="a")],
                             recalibration_coefficient=0.0)
