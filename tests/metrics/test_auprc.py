import numpy as np
import pytest
import torch

from recsys_lib.metrics.auprc import AUPRCMetric, compute_auprc
from tests.metrics import reference as ref


@pytest.mark.parametrize("ties", [False, True])
def test_window_auprc_against_numpy(ties):
    batches = ref.make_batches(5, 2, 8, seed=40, ties=ties)
    ref.check_values(AUPRCMetric, "auprc", ["auprc"], [ref.auprc], window_batches=3, window_size=24,
                     batches=batches, prefixes=("window_",))


def test_perfect_ranking_gives_one_and_no_positives_gives_zero():
    p = torch.tensor([[0.9, 0.8, 0.3, 0.1]])
    w = torch.ones(1, 4)
    assert compute_auprc(1, p, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), w).item() == pytest.approx(1.0)
    assert compute_auprc(1, p, torch.zeros(1, 4), w).item() == 0.0
    # positives ranked last: precision 1/3 at recall 1/2, 2/4 at recall 1
    got = compute_auprc(1, p, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), w).item()
    np.testing.assert_allclose(got, 0.5 * (1 / 3) + 0.5 * (2 / 4))
