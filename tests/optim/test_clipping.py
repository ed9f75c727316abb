import math

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.optim.clipping import GradientClipping, GradientClippingOptimizer
from recsys_lib.optim.keyed import KeyedOptimizerWrapper


def _setup(seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.Parameter(torch.randn(4, 3, generator=g))
    b = torch.nn.Parameter(torch.randn(5, generator=g))
    grads = [torch.randn(4, 3, generator=g) * scale, torch.randn(5, generator=g) * scale]
    inner = KeyedOptimizerWrapper({"a": a, "b": b}, lambda ps: torch.optim.SGD(ps, lr=1.0))
    return (a, b), grads, inner


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3, "inf"])
@pytest.mark.parametrize("max_gradient", [0.5, 1e6])
def test_norm_clipping_matches_torch(norm_type, max_gradient):
    params, grads, inner = _setup()
    opt = GradientClippingOptimizer(inner, GradientClipping.NORM, max_gradient=max_gradient, norm_type=norm_type)
    ref = [g.clone() for g in grads]  # reference norm written out by hand
    p_ = math.inf if norm_type == "inf" else float(norm_type)
    total = max(g.abs().max() for g in ref) if math.isinf(p_) else sum(g.abs().pow(p_).sum() for g in ref) ** (1 / p_)
    coef = min(1.0, max_gradient / (float(total) + 1e-6))
    before = [p.detach().clone() for p in params]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    for p, w0, g in zip(params, before, ref):
        torch.testing.assert_close(p.grad, g * coef)
        torch.testing.assert_close(p.detach(), w0 - g * coef)  # SGD lr=1 used the clipped grad


def test_norm_clipping_equals_clip_grad_norm_and_returns_norm():
    params, grads, inner = _setup()
    opt = GradientClippingOptimizer(inner, GradientClipping.NORM, max_gradient=0.7, track_grad_norm=True)
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.clone(), g.clone()
    want = torch.nn.utils.clip_grad_norm_(twins, 0.7, 2.0)
    opt.step()
    torch.testing.assert_close(opt.last_grad_norm, want)
    for p, t in zip(params, twins):
        torch.testing.assert_close(p.grad, t.grad)


def test_value_clipping_matches_clip_grad_value_():
    params, grads, inner = _setup()
    opt = GradientClippingOptimizer(inner, GradientClipping.VALUE, max_gradient=0.8)
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    for p, g in zip(params, grads):
        t = torch.nn.Parameter(torch.zeros_like(g))
        t.grad = g.clone()
        torch.nn.utils.clip_grad_value_([t], 0.8)
        torch.testing.assert_close(p.grad, t.grad)
        assert p.grad.abs().max() <= 0.8


def test_no_clipping_leaves_grads_and_skips_missing_grads():
    params, grads, inner = _setup()
    opt = GradientClippingOptimizer(inner, GradientClipping.NONE, max_gradient=1e-3)
    params[0].grad = grads[0].clone()
    opt.step()
    torch.testing.assert_close(params[0].grad, grads[0])
    assert params[1].grad is None
    norm_opt = GradientClippingOptimizer(_setup()[2], GradientClipping.NORM)
    assert norm_opt.clip_grad_norm_() is None  # no grads at all


def test_global_clip_without_process_groups_equals_local():
    params, grads, inner = _setup()
    opt = GradientClippingOptimizer(inner, GradientClipping.NORM, max_gradient=0.5, enable_global_grad_clip=True)
    twins = [torch.nn.Parameter(p.detach().clone()) for p in params]
    for p, t, g in zip(params, twins, grads):
        p.grad, t.grad = g.clone(), g.clone()
    want = torch.nn.utils.clip_grad_norm_(twins, 0.5)
    got = opt.clip_grad_norm_()
    torch.testing.assert_close(got, want)
    for p, t in zip(params, twins):
        torch.testing.assert_close(p.grad, t.grad)


def test_clipping_bad_input():
    _, _, inner = _setup()
    with pytest.raises(TypeError, match="GradientClipping"):
        GradientClippingOptimizer(inner, "norm")
    with pytest.raises(ValueError, match="max_gradient"):
        GradientClippingOptimizer(inner, GradientClipping.NORM, max_gradient=0.0)
    with pytest.raises(ValueError, match="norm_type"):
        GradientClippingOptimizer(inner, GradientClipping.NORM, norm_type="fro")
    with pytest.raises(ValueError, match="norm_type"):
        GradientClippingOptimizer(inner, GradientClipping.NORM, norm_type=-2.0)
    with pytest.raises(ValueError, match="param_to_pgs"):
        GradientClippingOptimizer(inner, GradientClipping.NORM, enable_global_grad_clip=True,
                                  param_to_pgs={torch.nn.Parameter(torch.ones(2)): []})
    with pytest.raises(TypeError, match="param_to_pgs"):
        GradientClippingOptimizer(inner, GradientClipping.NORM, param_to_pgs={inner.params["a"]: None})
    with pytest.raises(TypeError, match="KeyedOptimizer"):
        GradientClippingOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1))


# --- global clipping over sharded params (2 ranks, gloo) ------------------------------------------


def _full_grads():
    g = torch.Generator().manual_seed(7)
    return torch.randn(6, 2, generator=g) * 2, torch.randn(4, 2, generator=g), torch.randn(3, generator=g)


def _global_clip(rank, world_size, norm_types):
    singles = [dist.new_group([r]) for r in range(world_size)]  # every rank creates every group
    out = {str(nt): _global_clip_case(rank, world_size, nt, singles) for nt in norm_types}
    out["dtensor"] = _global_clip_dtensor(rank, world_size)
    return out


def _global_clip_dtensor(rank, world_size):
    # A DTensor parameter sharded on dim 0: its process group comes from the mesh, no param_to_pgs needed.
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    full_a, _, _ = _full_grads()
    mesh = init_device_mesh("cpu", (world_size,))
    a = torch.nn.Parameter(distribute_tensor(torch.zeros(6, 2), mesh, [Shard(0)]))
    inner = KeyedOptimizerWrapper({"a": a}, lambda ps: torch.optim.SGD(ps, lr=1.0))
    opt = GradientClippingOptimizer(inner, GradientClipping.NORM, max_gradient=1.0, enable_global_grad_clip=True)
    a.grad = distribute_tensor(full_a.clone(), mesh, [Shard(0)])
    total = opt.clip_grad_norm_()
    return total, a.grad.to_local().clone()


def _global_clip_case(rank, world_size, norm_type, singles):
    full_a, full_c, rep_b = _full_grads()
    rows_a, rows_c = 6 // world_size, 4 // world_size
    a = torch.nn.Parameter(torch.zeros(rows_a, 2))  # row-sharded over WORLD
    c = torch.nn.Parameter(torch.zeros(rows_c, 2))  # row-sharded, listed with two groups
    b = torch.nn.Parameter(torch.zeros(3))  # replicated
    inner = KeyedOptimizerWrapper({"a": a, "b": b, "c": c}, lambda ps: torch.optim.SGD(ps, lr=1.0))
    world = dist.group.WORLD
    opt = GradientClippingOptimizer(
        inner, GradientClipping.NORM, max_gradient=1.0, norm_type=norm_type, enable_global_grad_clip=True,
        param_to_pgs={a: [world], c: [singles[rank], world]},
    )
    a.grad = full_a[rank * rows_a:(rank + 1) * rows_a].clone()
    c.grad = full_c[rank * rows_c:(rank + 1) * rows_c].clone()
    b.grad = rep_b.clone()
    total = opt.clip_grad_norm_()
    return total, a.grad, b.grad, c.grad


@pytest.mark.dist
def test_global_clip_over_sharded_params_matches_unsharded():
    norm_types = (2.0, "inf")
    results = run_multiprocess(_global_clip, 2, norm_types)  # one process group for all cases
    for norm_type in norm_types:
        out = [r[str(norm_type)] for r in results]
        full_a, full_c, rep_b = _full_grads()
        twins = [torch.nn.Parameter(torch.zeros_like(t)) for t in (full_a, rep_b, full_c)]
        for t, g in zip(twins, (full_a, rep_b, full_c)):
            t.grad = g.clone()
        want = torch.nn.utils.clip_grad_norm_(twins, 1.0, float(norm_type))
        for rank, (total, ga, gb, gc) in enumerate(out):
            torch.testing.assert_close(total, want)
            torch.testing.assert_close(ga, twins[0].grad[rank * 3:(rank + 1) * 3])
            torch.testing.assert_close(gb, twins[1].grad)
            torch.testing.assert_close(gc, twins[2].grad[rank * 2:(rank + 1) * 2])
    twin = torch.nn.Parameter(torch.zeros(6, 2))
    twin.grad = _full_grads()[0].clone()
    want = torch.nn.utils.clip_grad_norm_([twin], 1.0)
    for rank, r in enumerate(results):
        total, local = r["dtensor"]
        torch.testing.assert_close(total, want)
        torch.testing.assert_close(local, twin.grad[rank * 3:(rank + 1) * 3])
