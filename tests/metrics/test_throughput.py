import pytest
import torch

import recsys_lib.metrics.throughput as throughput_mod
from recsys_lib.metrics.metrics_config import BatchSizeStage
from recsys_lib.metrics.throughput import ThroughputMetric

PREFIX = "throughput-throughput|"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(throughput_mod, "time", c)
    return c


def _steps(metric, clock, seconds):
    for s in seconds:
        clock.now += s
        metric.update()


def test_counts_warmup_lifetime_and_window(clock):
    m = ThroughputMetric(batch_size=4, world_size=2, window_seconds=5, warmup_steps=2)
    _steps(m, clock, [1.0, 1.0])  # warm-up: counted, not timed
    out = m.compute()
    assert set(out) == {PREFIX + "total_examples", PREFIX + "attempt_examples"}
    assert out[PREFIX + "total_examples"].item() == 16
    _steps(m, clock, [1.0, 2.0, 4.0])  # 3 timed steps of 8 examples in 7 s; window (5 s) holds the last two
    out = m.compute()
    assert out[PREFIX + "total_examples"].item() == 40 and out[PREFIX + "attempt_examples"].item() == 40
    assert out[PREFIX + "lifetime_throughput"].item() == pytest.approx(24 / 7)
    assert out[PREFIX + "window_throughput"].item() == pytest.approx(16 / 6)


def test_batch_size_stages(clock):
    stages = [BatchSizeStage(batch_size=2, max_iters=2), BatchSizeStage(batch_size=10, max_iters=0)]
    m = ThroughputMetric(batch_size=4, world_size=3, window_seconds=100, warmup_steps=0, batch_size_stages=stages)
    _steps(m, clock, [1.0] * 4)
    assert m.compute()[PREFIX + "total_examples"].item() == 3 * (2 + 2 + 10 + 10)


def test_checkpoint_restores_totals_not_attempt(clock):
    m = ThroughputMetric(batch_size=4, world_size=1, window_seconds=100, warmup_steps=1)
    _steps(m, clock, [1.0, 2.0, 2.0])
    restored = ThroughputMetric(batch_size=4, world_size=1, window_seconds=100, warmup_steps=1)
    restored.load_state_dict(m.state_dict())
    restored.set_num_batch(3)
    _steps(restored, clock, [50.0, 1.0])  # the pause while restarting is not timed
    out = restored.compute()
    assert out[PREFIX + "total_examples"].item() == 20 and out[PREFIX + "attempt_examples"].item() == 8
    assert out[PREFIX + "lifetime_throughput"].item() == pytest.approx(12 / 5)
    assert set(m.state_dict()) == {"total_examples", "warmup_examples", "time_lapse_after_warmup"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="window_seconds"):
        ThroughputMetric(batch_size=4, world_size=1, window_seconds=0)
    with pytest.raises(ValueError, match="batch_size"):
        ThroughputMetric(batch_size=0, world_size=1, window_seconds=1)
    with pytest.raises(TypeError):
        ThroughputMetric(4, 1, 10)  # keyword-only, as in TorchRec
    assert isinstance(ThroughputMetric(batch_size=1, world_size=1, window_seconds=1).compute()[PREFIX + "total_examples"],
                      torch.Tensor)


def test_num_batch_travels_through_state_dict_with_batch_size_stages():
    stages = [BatchSizeStage(batch_size=8, max_iters=2), BatchSizeStage(batch_size=16, max_iters=0)]
    m = ThroughputMetric(batch_size=8, world_size=1, window_seconds=100, warmup_steps=0, batch_size_stages=stages)
    for _ in range(3):
        m.update()
    sd = m.state_dict()
    assert int(sd["num_batch"]) == 3
    fresh = ThroughputMetric(batch_size=8, world_size=1, window_seconds=100, warmup_steps=0, batch_size_stages=stages)
    fresh.load_state_dict(sd)
    assert fresh._num_batch == 3
    plain = ThroughputMetric(batch_size=8, world_size=1, window_seconds=100, warmup_steps=0)
    assert "num_batch" not in plain.state_dict()
    plain.load_state_dict(sd)  # the extra key is taken out by the pre-hook, so strict loading still works
