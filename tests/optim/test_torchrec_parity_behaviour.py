"""Optimizer behaviours TorchRec 1.8.0 users rely on, each checked against hand-computed values."""

import torch

from recsys_lib.optim.clipping import GradientClipping, GradientClippingOptimizer
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
from recsys_lib.optim.warmup import WarmupOptimizer, WarmupPolicy, WarmupStage


def _wrapper(p):
    return KeyedOptimizerWrapper({"p": p}, lambda ps: torch.optim.SGD(ps, lr=0.1))


def test_params_assignable_and_optims_listed():
    p = torch.nn.Parameter(torch.ones(2))
    w = _wrapper(p)
    assert dict(w._params) == {"p": p}
    q = torch.nn.Parameter(torch.zeros(1))
    w.params = {"q": q}
    assert list(w.params) == ["q"]
    c = CombinedOptimizer([("a", _wrapper(p))])
    assert [k for k, _ in c._optims] == ["a"] and list(c.params) == ["a.p"]


def test_warmup_sets_lr_on_groups_without_lr():
    p = torch.nn.Parameter(torch.ones(2))
    w = _wrapper(p)
    del w.param_groups[0]["lr"]
    opt = WarmupOptimizer(w, stages=[WarmupStage(policy=WarmupPolicy.LINEAR, max_iters=2, value=0.5)], lr=0.2)
    assert w.param_groups[0]["lr"] == 0.2 * 0.5  # iteration 0 of a linear ramp from 0.5 to 1
    opt.step()
    assert abs(w.param_groups[0]["lr"] - 0.2 * 0.75) < 1e-12


def test_clipping_total_norm_and_last_norm():
    p = torch.nn.Parameter(torch.ones(2))
    g = GradientClippingOptimizer(_wrapper(p), clipping=GradientClipping.NORM, max_gradient=1.0)
    p.grad = torch.tensor([3.0, 4.0])
    assert g.last_total_grad_norm is None
    total, grads = g.compute_total_grad_norm()
    torch.testing.assert_close(total, torch.tensor(5.0))
    assert len(grads) == 1
    g.step()
    torch.testing.assert_close(g.last_total_grad_norm, torch.tensor(5.0))
    torch.testing.assert_close(p.detach(), torch.ones(2) - 0.1 * torch.tensor([0.6, 0.8]))


def test_rowwise_adagrad_share_memory():
    p = torch.nn.Parameter(torch.ones(3, 2))
    opt = RowWiseAdagrad([p], lr=0.1)
    opt.share_memory()
    assert opt.state[p]["sum"].is_shared()
