import numpy as np
import pytest
import torch

from recsys_lib.metrics.auc import AUCMetric, compute_auc, compute_auc_per_group
from recsys_lib.metrics.metrics_config import RecTaskInfo
from tests.metrics import reference as ref


@pytest.mark.parametrize("ties", [False, True])
def test_window_auc_against_pairwise_definition(ties):
    batches = ref.make_batches(5, 2, 8, seed=30, ties=ties)
    # AUC reports the window only (no lifetime value), as TorchRec does by default.
    ref.check_values(AUCMetric, "auc", ["auc"], [ref.auc], window_batches=2, window_size=16, batches=batches,
                     prefixes=("window_",))


def test_window_keeps_the_newest_examples_not_whole_batches():
    batches = ref.make_batches(4, 1, 8, seed=31)
    m = AUCMetric(world_size=1, my_rank=0, batch_size=8, tasks=[RecTaskInfo(name="t")], window_size=13)
    ref.feed(m, batches, ["t"])
    p, y, w = (a[-13:] for a in ref.concat(batches, 0))
    # buffers hold float32 examples (half the memory of float64): float32-level tolerance
    np.testing.assert_allclose(m.compute()["auc-t|window_auc"].item(), ref.auc(p, y, w), rtol=1e-6)


def test_soft_labels_and_weights():
    rng = np.random.default_rng(32)
    p, y, w = rng.random((1, 30)), rng.random((1, 30)), rng.random((1, 30))
    got = compute_auc(1, torch.tensor(p), torch.tensor(y), torch.tensor(w))
    np.testing.assert_allclose(got.numpy(), [ref.auc(p[0], y[0], w[0])], rtol=1e-10)


def test_one_class_only_gives_half():
    p = torch.rand(1, 5)
    assert compute_auc(1, p, torch.ones(1, 5), torch.ones(1, 5)).item() == 0.5
    assert compute_auc(1, p, torch.zeros(1, 5), torch.ones(1, 5)).item() == 0.5


def test_apply_bin_turns_soft_labels_into_hard_ones_at_0_039():
    rng = np.random.default_rng(34)
    p, y, w = rng.random(40), rng.random(40) * 0.08, rng.random(40) + 0.5  # labels around the threshold
    got = compute_auc(1, torch.tensor(p)[None], torch.tensor(y)[None], torch.tensor(w)[None], apply_bin=True)
    np.testing.assert_allclose(got.numpy(), [ref.auc(p, (y >= 0.039).astype(float), w)], rtol=1e-10)
    plain = compute_auc(1, torch.tensor(p)[None], torch.tensor(y)[None], torch.tensor(w)[None])
    assert abs(plain.item() - got.item()) > 1e-3  # binning changed the value


def test_grouped_auc_is_the_mean_over_groups():
    rng = np.random.default_rng(33)
    p, y = rng.random(24), (rng.random(24) < 0.5).astype(float)
    y[:2], y[2:4] = 1.0, 0.0  # each group gets both classes
    y[12:14], y[14:16] = 1.0, 0.0
    keys = np.repeat([0, 1], 12)
    m = AUCMetric(world_size=1, my_rank=0, batch_size=24, tasks=[RecTaskInfo(name="t")], window_size=100,
                  grouped_auc=True)
    assert m.get_required_inputs() == {"grouping_keys"}
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=None,
             required_inputs={"grouping_keys": torch.tensor(keys)})
    out = m.compute()
    ones = np.ones(12)
    want = np.mean([ref.auc(p[keys == g], y[keys == g], ones) for g in (0, 1)])
    np.testing.assert_allclose(out["auc-t|window_grouped_auc"].item(), want, rtol=1e-10)
    got = compute_auc_per_group(1, [torch.tensor(p)[None]], [torch.tensor(y)[None]], [torch.ones(1, 24)], torch.tensor(keys))
    np.testing.assert_allclose(got.numpy(), [want], rtol=1e-10)
    # chunks are joined along the examples, and a leading -1 (empty-state padding) in the keys is dropped
    pt, yt, kt = torch.tensor(p), torch.tensor(y), torch.tensor(keys)
    got = compute_auc_per_group(
        1, [pt[:10], pt[10:]], [yt[:10], yt[10:]], [torch.ones(10), torch.ones(14)], torch.cat([torch.tensor([-1]), kt])
    )
    np.testing.assert_allclose(got.numpy(), [want], rtol=1e-10)
    with pytest.raises(Exception, match="fused_update_limit"):
        AUCMetric(world_size=1, my_rank=0, batch_size=24, tasks=[RecTaskInfo(name="t")], grouped_auc=True,
                  fused_update_limit=2)
    with pytest.raises(ValueError, match="grouping_keys"):
        m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=None)
