import numpy as np
import pytest
import torch

from recsys_lib.metrics.auprc import AUPRCMetric, compute_auprc
from recsys_lib.metrics.metrics_config import RecComputeMode, RecTaskInfo
from tests.metrics import reference as ref


@pytest.mark.parametrize("ties", [False, True])
def test_window_auprc_against_numpy(ties):
    batches = ref.make_batches(5, 2, 8, seed=40, ties=ties)
    m = AUPRCMetric(world_size=1, my_rank=0, batch_size=8, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b")],
                    window_size=24)
    ref.feed(m, batches, ["a", "b"])
    out = m.compute()
    assert set(out) == {f"auprc-{t}|{pre}auprc" for t in "ab" for pre in ("window_", "lifetime_")}
    for i, t in enumerate("ab"):
        np.testing.assert_allclose(out[f"auprc-{t}|window_auprc"].item(), ref.auprc(*ref.concat(batches[-3:], i)),
                                   rtol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_lifetime_auprc_is_the_window_weighted_mean_over_computes(fused):
    """Each compute adds its window's AUPRC (all tasks of the computation), weighted by the window's total
    weight; reset leaves the lifetime sums (TorchRec keeps them outside the states)."""
    batches = ref.make_batches(6, 2, 8, seed=41)
    mode = RecComputeMode.FUSED_TASKS_COMPUTATION if fused else RecComputeMode.UNFUSED_TASKS_COMPUTATION
    m = AUPRCMetric(world_size=1, my_rank=0, batch_size=8, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b")],
                    window_size=16, compute_mode=mode)
    groups = [[0, 1]] if fused else [[0], [1]]  # the tasks each computation averages over
    sums = {tuple(g): [0.0, 0.0] for g in groups}
    for step in range(len(batches)):
        ref.feed(m, batches[step:step + 1], ["a", "b"])
        if step % 2 == 0:
            continue
        out = m.compute()
        window = batches[max(0, step - 1):step + 1]  # 16 examples = 2 batches
        for g in groups:
            weight = sum(ref.concat(window, i)[2].sum() for i in g)
            sums[tuple(g)][0] += sum(ref.auprc(*ref.concat(window, i)) * weight for i in g)
            sums[tuple(g)][1] += weight * len(g)
            for i in g:
                got = out[f"auprc-{'ab'[i]}|lifetime_auprc"]
                assert got.dtype == torch.float64
                np.testing.assert_allclose(got.item(), sums[tuple(g)][0] / sums[tuple(g)][1], rtol=1e-6)
    m.reset()
    assert all(v.item() != 0.5 for k, v in m.compute().items() if "lifetime" in k)  # reset keeps the lifetime


def test_perfect_ranking_gives_one_and_no_positives_gives_zero():
    p = torch.tensor([[0.9, 0.8, 0.3, 0.1]])
    w = torch.ones(1, 4)
    assert compute_auprc(1, p, torch.tensor([[1.0, 1.0, 0.0, 0.0]]), w).item() == pytest.approx(1.0)
    assert compute_auprc(1, p, torch.zeros(1, 4), w).item() == 0.0
    # positives ranked last: precision 1/3 at recall 1/2, 2/4 at recall 1
    got = compute_auprc(1, p, torch.tensor([[0.0, 0.0, 1.0, 1.0]]), w).item()
    np.testing.assert_allclose(got, 0.5 * (1 / 3) + 0.5 * (2 / 4))
