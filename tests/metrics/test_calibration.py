import torch

from recsys_lib.metrics.calibration import CalibrationMetric, compute_calibration
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=11)
    ref.check_values(CalibrationMetric, "calibration", ["calibration"], [ref.calibration], window_batches=2,
                     window_size=20, batches=batches)


def test_no_positive_label_weight_gives_zero():
    got = compute_calibration(torch.tensor([2.0, 1.0], dtype=torch.double), torch.tensor([0.0, 4.0], dtype=torch.double))
    assert got.tolist() == [0.0, 0.25]
