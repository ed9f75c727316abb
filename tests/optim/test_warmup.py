import copy
import math

import pytest
import torch

from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.optim.warmup import WarmupOptimizer, WarmupPolicy, WarmupStage


def _keyed_sgd(n=3, seed=0):
    torch.manual_seed(seed)
    p = torch.nn.Parameter(torch.randn(n))
    return p, KeyedOptimizerWrapper({"w": p}, lambda ps: torch.optim.SGD(ps, lr=123.0))


def _lrs(stages, n_steps, lr=0.5):
    _, inner = _keyed_sgd()
    opt = WarmupOptimizer(inner, stages, lr=lr)
    out = [inner.param_groups[0]["lr"]]
    for _ in range(n_steps):
        opt.step()  # no grads: SGD skips the params, only the schedule moves
        out.append(inner.param_groups[0]["lr"])
    return out


# Each case: a stage and the multiplier the module docstring's formula gives at iteration i (by hand).
CASES = [
    (WarmupStage(WarmupPolicy.NONE, max_iters=10), lambda i: 1.0),
    (WarmupStage(WarmupPolicy.LINEAR, max_iters=4, value=0.2), lambda i: 0.2 + 0.8 * i / 4),
    (WarmupStage(WarmupPolicy.CONSTANT, max_iters=10, value=0.3, lr_scale=2.0), lambda i: 0.6),
    (WarmupStage(WarmupPolicy.POLY, max_iters=10, value=2.0, decay_iters=5), lambda i: (1 - min(i, 5) / 5) ** 2),
    (WarmupStage(WarmupPolicy.POLY, max_iters=10, value=1.0), lambda i: 1 - i / 10),
    (WarmupStage(WarmupPolicy.STEP, max_iters=10, value=0.5, decay_iters=3), lambda i: 0.5 ** (i // 3)),
    (WarmupStage(WarmupPolicy.INVSQRT, max_iters=10), lambda i: 1 / math.sqrt(max(i, 1))),
    (WarmupStage(WarmupPolicy.COSINE_ANNEALING_WARM_RESTARTS, max_iters=10, value=0.1, sgdr_period=4),
     lambda i: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (i % 4) / 4))),
    (WarmupStage(WarmupPolicy.INTERPOLATE, max_iters=8, value=1.0, start_interpolating_iters=4, end_value=0.0),
     lambda i: 1.0 if i < 4 else 1.0 - (i - 4) / 4),
]


@pytest.mark.parametrize("stage,mult", CASES, ids=[c[0].policy.name for c in CASES])
def test_policy_multipliers(stage, mult):
    lrs = _lrs([stage], 7)
    # TorchRec 1.8.0: iteration max_iters still belongs to the stage; after it a NONE stage (multiplier 1) runs
    want = [0.5 * (mult(i) if i <= stage.max_iters else 1.0) for i in range(8)]
    for got, exp in zip(lrs, want):
        assert got == pytest.approx(exp, rel=1e-12, abs=1e-12)


def test_stages_are_absolute_boundaries_then_a_none_stage():
    stages = [
        WarmupStage(WarmupPolicy.LINEAR, max_iters=2, value=0.5),
        WarmupStage(WarmupPolicy.CONSTANT, max_iters=4, value=0.25),
    ]
    got = _lrs(stages, 6, lr=1.0)
    # values TorchRec 1.8.0 gives for the same stages
    assert got == pytest.approx([0.5, 0.75, 1.0, 0.25, 0.25, 1.0, 1.0])


def test_lr_is_used_by_the_inner_step():
    p, inner = _keyed_sgd()
    opt = WarmupOptimizer(inner, [WarmupStage(WarmupPolicy.LINEAR, max_iters=4, value=0.0)], lr=1.0)
    w = p.detach().clone()
    for i in range(3):
        p.grad = torch.ones_like(p)
        opt.step()
        w -= (i / 4) * torch.ones_like(w)  # lr at iteration i is i/4
        torch.testing.assert_close(p.detach(), w)


def test_iteration_counter_checkpoints():
    stages = [WarmupStage(WarmupPolicy.LINEAR, max_iters=10, value=0.1)]
    _, inner = _keyed_sgd()
    opt = WarmupOptimizer(inner, stages, lr=1.0)
    for _ in range(5):
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    assert sd["state"]["__warmup"]["warmup"].tolist() == [5, 0]  # TorchRec's [iteration, stage]
    assert set(sd["state"]) == {"__warmup"}  # SGD without momentum keeps no state
    assert "__warmup" in opt.params

    _, inner2 = _keyed_sgd()
    opt2 = WarmupOptimizer(inner2, stages, lr=1.0)
    assert inner2.param_groups[0]["lr"] == pytest.approx(0.1)
    opt2.load_state_dict(sd)
    assert inner2.param_groups[0]["lr"] == pytest.approx(0.1 + 0.9 * 5 / 10)
    opt.step()
    opt2.step()
    assert inner2.param_groups[0]["lr"] == inner.param_groups[0]["lr"]


def test_custom_param_name_and_lr_param():
    p = torch.nn.Parameter(torch.ones(2))
    inner = KeyedOptimizerWrapper({"w": p}, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5))
    opt = WarmupOptimizer(inner, [WarmupStage(WarmupPolicy.CONSTANT, max_iters=3, value=0.5)],
                          lr=0.8, lr_param="momentum", param_name="sched")
    assert inner.param_groups[0]["momentum"] == pytest.approx(0.4)
    assert inner.param_groups[0]["lr"] == 0.1
    assert "sched" in opt.state_dict()["state"]


def test_warmup_bad_input():
    _, inner = _keyed_sgd()
    WarmupOptimizer(inner, [], param_name="no_stages")  # accepted, as TorchRec: constant lr
    assert inner.param_groups[0]["lr"] == 0.1
    with pytest.raises(TypeError, match=r"stages\[0\]"):
        WarmupOptimizer(inner, [{"policy": "linear"}])
    with pytest.raises(ValueError, match="increase"):
        WarmupOptimizer(inner, [WarmupStage(max_iters=5), WarmupStage(max_iters=5)])
    # a group without the lr_param entry gets one (TorchRec sets it; it used to be rejected here)
    WarmupOptimizer(inner, [WarmupStage()], lr_param="my_lr", param_name="w2")
    assert inner.param_groups[0]["my_lr"] == 0.1
    with pytest.raises(ValueError, match="lr"):
        WarmupOptimizer(inner, [WarmupStage()], lr=-1.0)
    with pytest.raises(ValueError, match="already in use"):
        WarmupOptimizer(inner, [WarmupStage()], param_name="w")
    with pytest.raises(ValueError, match="param_name"):
        WarmupOptimizer(inner, [WarmupStage()], param_name="")
    with pytest.raises(TypeError, match="KeyedOptimizer"):
        WarmupOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1), [WarmupStage()])


def test_warmup_stage_validation():
    assert WarmupStage(policy="poly").policy is WarmupPolicy.POLY
    with pytest.raises(ValueError, match="unknown policy 'fast'"):
        WarmupStage(policy="fast")
    with pytest.raises(TypeError, match="policy"):
        WarmupStage(policy=3)
    with pytest.raises(ValueError, match="max_iters"):
        WarmupStage(max_iters=0)
    with pytest.raises(TypeError, match="max_iters"):
        WarmupStage(max_iters=2.5)
    with pytest.raises(ValueError, match="sgdr_period"):
        WarmupStage(sgdr_period=0)
    with pytest.raises(ValueError, match="decay_iters"):
        WarmupStage(decay_iters=0)
    with pytest.raises(ValueError, match="INTERPOLATE"):
        WarmupStage(WarmupPolicy.INTERPOLATE, max_iters=4)
    with pytest.raises(ValueError, match="start_interpolating_iters"):
        WarmupStage(WarmupPolicy.INTERPOLATE, max_iters=4, start_interpolating_iters=4, end_value=0.0)


def test_policy_values():
    assert {p.name: p.value for p in WarmupPolicy} == {
        "NONE": "none", "LINEAR": "linear", "CONSTANT": "constant", "POLY": "poly", "STEP": "step",
        "INVSQRT": "inv_sqrt", "COSINE_ANNEALING_WARM_RESTARTS": "cosine_annealing_warm_restarts",
        "INTERPOLATE": "interpolate",
    }


def test_nested_wrappers_over_combined_checkpoint_roundtrip():
    from recsys_lib.optim.clipping import GradientClipping, GradientClippingOptimizer
    from recsys_lib.optim.keyed import CombinedOptimizer

    def build(seed):
        torch.manual_seed(seed)
        m = torch.nn.Linear(3, 2)
        a = KeyedOptimizerWrapper({"weight": m.weight}, lambda ps: torch.optim.Adam(ps, lr=0.1))
        b = KeyedOptimizerWrapper({"bias": m.bias}, lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9))
        warm = WarmupOptimizer(CombinedOptimizer([("w", a), ("b", b)]),
                               [WarmupStage(WarmupPolicy.LINEAR, max_iters=10, value=0.0)], lr=1.0)
        return m, GradientClippingOptimizer(warm, GradientClipping.NORM, max_gradient=1.0)

    x = torch.randn(4, 3)
    m, opt = build(0)
    opt.init_state()  # materialises Adam/SGD state; does not tick the schedule
    assert opt.state_dict()["state"]["__warmup"]["warmup"].tolist() == [0, 0]
    for _ in range(3):
        opt.zero_grad()
        m(x).pow(2).sum().backward()
        opt.step()
    sd = copy.deepcopy(opt.state_dict())
    assert set(sd["state"]) == {"w.weight", "b.bias", "__warmup"}
    assert sd["state"]["__warmup"]["warmup"].tolist()[0] == 3
    m2, opt2 = build(1)
    m2.load_state_dict(m.state_dict())
    opt2.init_state()
    opt2.load_state_dict(sd)
    for model, o in ((m, opt), (m2, opt2)):
        o.zero_grad()
        model(x).pow(2).sum().backward()
        o.step()
    torch.testing.assert_close(m.weight, m2.weight)
    torch.testing.assert_close(m.bias, m2.bias)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.4)
