import numpy as np
import pytest
import torch

from recsys_lib.metrics.metrics_config import RecTaskInfo
from recsys_lib.metrics.ne import compute_ne, get_ne_states, NEMetric
from tests.metrics import reference as ref


def test_lifetime_and_window_against_numpy():
    batches = ref.make_batches(5, 2, 8, seed=1)
    ref.check_values(NEMetric, "ne", ["ne"], [ref.ne], window_batches=2, window_size=20, batches=batches)


def test_include_logloss_adds_logloss_keys():
    batches = ref.make_batches(4, 2, 8, seed=2)
    ref.check_values(NEMetric, "ne", ["ne", "logloss"], [ref.ne, ref.logloss], window_batches=2, window_size=16,
                     batches=batches, include_logloss=True)


def test_pure_functions_match_numpy():
    p, y, w = ref.make_batches(1, 3, 10, seed=3)[0]
    s = get_ne_states(torch.tensor(y), torch.tensor(p), torch.tensor(w), eta=1e-12)
    assert all(v.shape == (3,) for v in s.values())
    got = compute_ne(s["cross_entropy_sum"], s["weighted_num_samples"], s["pos_labels"], s["neg_labels"], eta=1e-12)
    np.testing.assert_allclose(got.numpy(), [ref.ne(p[i], y[i], w[i]) for i in range(3)], rtol=1e-10)


def test_better_model_has_lower_ne():
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    good = torch.tensor([0.9, 0.1, 0.8, 0.2, 0.9, 0.1])
    base = torch.full((6,), 0.5)  # the base rate: NE == 1
    out = {}
    for name, p in (("good", good), ("base", base)):
        m = NEMetric(world_size=1, my_rank=0, batch_size=6, tasks=[RecTaskInfo(name="t")])
        m.update(predictions=p, labels=y, weights=None)
        out[name] = m.compute()["ne-t|lifetime_ne"].item()
    assert out["good"] < 0.5
    assert out["base"] == pytest.approx(1.0)


def test_labels_outside_unit_interval_raise():
    m = NEMetric(world_size=1, my_rank=0, batch_size=3, tasks=[RecTaskInfo(name="t")])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\].*2\.0"):
        m.update(predictions=torch.rand(3), labels=torch.tensor([0.0, 1.0, 2.0]), weights=None)
    with pytest.raises(ValueError, match="labels must lie in"):
        m.update(predictions=torch.rand(3), labels=torch.tensor([-1.0, 1.0, 0.0]), weights=None)


def test_missing_label_allowed_with_zero_weight():
    m = NEMetric(world_size=1, my_rank=0, batch_size=4, tasks=[RecTaskInfo(name="t")],
                 allow_missing_label_with_zero_weight=True)
    p = np.array([0.7, 0.2, 0.6, 0.3])
    y = np.array([1.0, 0.0, -1.0, 1.0])  # -1: missing label
    w = np.array([1.0, 2.0, 0.0, 1.5])
    m.update(predictions=torch.tensor(p), labels=torch.tensor(y), weights=torch.tensor(w))
    keep = w > 0
    np.testing.assert_allclose(m.compute()["ne-t|lifetime_ne"].item(), ref.ne(p[keep], y[keep], w[keep]), rtol=1e-10)
    with pytest.raises(ValueError, match="labels must lie in"):
        m.update(predictions=torch.rand(2), labels=torch.tensor([-1.0, 1.0]), weights=torch.tensor([1.0, 1.0]))


def test_bad_labels_of_one_task_leave_every_task_untouched():
    m = NEMetric(world_size=1, my_rank=0, batch_size=3, tasks=[RecTaskInfo(name="a"), RecTaskInfo(name="b")])
    with pytest.raises(ValueError, match="labels must lie in"):
        m.update(predictions=torch.rand(2, 3), labels=torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 3.0]]), weights=None)
    assert all(c.weighted_num_samples.sum().item() == 0 for c in m._metrics_computations)
