"""SemisyncOptimizer: local steps every step, the global optimizer's global_step every N, against a hand-rolled loop."""

import pytest
import torch

from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.optim.semi_sync import (
    SEMISYNC_GLOBAL_STEP_COUNTER_KEY,
    SEMISYNC_LOCAL_STEP_COUNTER_KEY,
    SemisyncOptimizer,
)


class OuterSGD(torch.optim.Optimizer):
    """A DiLoCo-like outer optimizer: moves its global copy along (current - global) by ``outer_lr``."""

    def __init__(self, params, outer_lr):
        super().__init__(params, {"outer_lr": outer_lr})
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["global_copy"] = p.detach().clone()
        self.calls = []

    @torch.no_grad()
    def global_step(self, local_step_counter, closure=None):
        self.calls.append(int(local_step_counter))
        for group in self.param_groups:
            for p in group["params"]:
                g = self.state[p]["global_copy"]
                g.add_(p - g, alpha=group["outer_lr"])
                p.copy_(g)


def _model():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def _batches(n):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 4, generator=g), torch.randn(5, 3, generator=g)) for _ in range(n)]


def _semisync(model, n_local, outer_lr=0.5):
    named = dict(model.named_parameters())
    local = KeyedOptimizerWrapper(named, lambda ps: torch.optim.SGD(ps, lr=0.1))
    glob = KeyedOptimizerWrapper(named, lambda ps: OuterSGD(ps, outer_lr))
    return SemisyncOptimizer(model.parameters(), local, glob, num_local_steps=n_local)


def test_matches_hand_rolled_schedule():
    steps, n_local, outer_lr = 7, 3, 0.5
    model = _model()
    opt = _semisync(model, n_local, outer_lr)
    ref = _model()
    ref_copy = [p.detach().clone() for p in ref.parameters()]
    for i, (x, y) in enumerate(_batches(steps), start=1):
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        torch.nn.functional.mse_loss(ref(x), y).backward()
        with torch.no_grad():
            for p, g in zip(ref.parameters(), ref_copy):
                p.sub_(0.1 * p.grad)
                p.grad = None
                if i % n_local == 0:  # the outer step, by hand
                    g.add_(outer_lr * (p - g))
                    p.copy_(g)
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q)
    assert opt._global_optimizer._optimizer.calls == [3, 6]
    assert int(opt.params[SEMISYNC_LOCAL_STEP_COUNTER_KEY]) == 7
    assert int(opt.params[SEMISYNC_GLOBAL_STEP_COUNTER_KEY]) == 2


def test_state_dict_prefixes_and_round_trip():
    model = _model()
    opt = _semisync(model, 2)
    for x, y in _batches(3):
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    sd = opt.state_dict()["state"]
    assert set(sd["weight"]) == {"semi_sync_global_global_copy", SEMISYNC_GLOBAL_STEP_COUNTER_KEY,
                                 SEMISYNC_LOCAL_STEP_COUNTER_KEY}
    assert int(sd["weight"][SEMISYNC_LOCAL_STEP_COUNTER_KEY]) == 3
    saved = {k: {n: v.clone() for n, v in s.items()} for k, s in sd.items()}
    other_model = _model()
    other = _semisync(other_model, 2)
    other.load_state_dict({"state": saved})
    assert int(other.params[SEMISYNC_LOCAL_STEP_COUNTER_KEY]) == 3
    inner = other._global_optimizer._optimizer
    torch.testing.assert_close(inner.state[other_model.weight]["global_copy"], saved["weight"]["semi_sync_global_global_copy"])
    # the schedule continues where it stopped: step 4 is a global step (4 % 2 == 0)
    x, y = _batches(1)[0]
    torch.nn.functional.mse_loss(other_model(x), y).backward()
    other.step()
    assert inner.calls == [4]


def test_global_optimizer_without_global_step_is_a_clear_error():
    model = _model()
    named = dict(model.named_parameters())
    opt = SemisyncOptimizer(model.parameters(), KeyedOptimizerWrapper(named, lambda ps: torch.optim.SGD(ps, lr=0.1)),
                            KeyedOptimizerWrapper(named, lambda ps: torch.optim.SGD(ps, lr=0.1)), num_local_steps=1)
    with pytest.raises(TypeError, match="has no global_step"):
        opt.step()
    assert "semi_sync_local_optim" in repr(opt)
