from functools import partial

import torch

from recsys_lib.metrics.precision import compute_precision, PrecisionMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=18, ties=True)
    ref.check_values(PrecisionMetric, "precision", ["precision"], [ref.precision], window_batches=2, window_size=20,
                     batches=batches)


def test_threshold_argument():
    batches = ref.make_batches(4, 2, 8, seed=19)
    ref.check_values(PrecisionMetric, "precision", ["precision"], [partial(ref.precision, threshold=0.7)],
                     window_batches=2, window_size=16, batches=batches, threshold=0.7)


def test_nothing_predicted_positive_gives_zero():
    z = torch.zeros(1, dtype=torch.double)
    assert compute_precision(z, z).tolist() == [0.0]
