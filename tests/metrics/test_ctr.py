import torch

from recsys_lib.metrics.ctr import compute_ctr, CTRMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=12)
    ref.check_values(CTRMetric, "ctr", ["ctr"], [ref.ctr], window_batches=3, window_size=24, batches=batches)


def test_zero_weight_gives_zero():
    assert compute_ctr(torch.zeros(1, dtype=torch.double), torch.zeros(1, dtype=torch.double)).tolist() == [0.0]
