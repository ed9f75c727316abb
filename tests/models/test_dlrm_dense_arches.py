"""DLRM dense parts (DenseArch, interactions, OverArch, choose) against hand-written math."""

import itertools
import math
import warnings

import pytest
import torch
from torch import nn

from recsys_lib.models._dlrm_dense_arches import (
    DenseArch,
    InteractionArch,
    InteractionDCNArch,
    InteractionProjectionArch,
    OverArch,
    choose,
)
from recsys_lib.modules.crossnet import LowRankCrossNet

B, F, D = 3, 4, 5


def _script(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        # fx's GraphModule.__init__ annotations trigger a TorchScript UserWarning (torch's, not ours)
        warnings.filterwarnings("ignore", message=".*instance-level annotations", category=UserWarning)
        return torch.jit.script(m)


def _inputs(batch=B, num=F, dim=D):
    torch.manual_seed(0)
    return torch.randn(batch, dim), torch.randn(batch, num, dim)


@pytest.mark.parametrize("n,k", [(n, k) for n in range(0, 12) for k in range(-1, 14)])
def test_choose_matches_math_comb(n, k):
    expected = math.comb(n, k) if 0 <= k <= n else 0
    assert choose(n, k) == expected


def test_choose_large():
    assert choose(100, 50) == math.comb(100, 50)


def test_dense_arch_is_relu_mlp():
    arch = DenseArch(in_features=6, layer_sizes=[7, D])
    x = torch.randn(B, 6)
    h = x
    for layer in arch.model._mlp:
        h = torch.relu(h @ layer._linear.weight.T + layer._linear.bias)
    torch.testing.assert_close(arch(x), h)
    assert {k: tuple(v.shape) for k, v in arch.state_dict().items()} == {
        "model._mlp.0._linear.weight": (7, 6),
        "model._mlp.0._linear.bias": (7,),
        "model._mlp.1._linear.weight": (D, 7),
        "model._mlp.1._linear.bias": (D,),
    }


def test_interaction_arch_matches_pairwise_dot_loop():
    dense, sparse = _inputs()
    out = InteractionArch(num_sparse_features=F)(dense, sparse)
    assert out.shape == (B, D + F + choose(F, 2))
    rows = []
    for b in range(B):
        vectors = [dense[b]] + [sparse[b, f] for f in range(F)]
        dots = [torch.dot(vectors[i], vectors[j]) for i in range(F + 1) for j in range(i + 1, F + 1)]
        rows.append(torch.cat([dense[b], torch.stack(dots)]))
    torch.testing.assert_close(out, torch.stack(rows))


def _pairwise_reference(dense, sparse):
    """The interaction written as an explicit dot loop (autograd flows through plain ``torch.dot``)."""
    rows = []
    for b in range(dense.size(0)):
        vectors = [dense[b]] + [sparse[b, f] for f in range(sparse.size(1))]
        dots = [torch.dot(vectors[i], vectors[j]) for i in range(len(vectors)) for j in range(i + 1, len(vectors))]
        rows.append(torch.cat([dense[b], torch.stack(dots)]))
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["eager", "no_grad", "scripted", "fx"])
def test_interaction_arch_values_and_gradients_match_the_dot_loop(mode):
    dense, sparse = _inputs(batch=4, num=6, dim=3)
    grad_out = torch.randn(4, 3 + choose(7, 2))
    arch = InteractionArch(num_sparse_features=6)
    if mode == "scripted":
        arch = _script(arch)
    elif mode == "fx":
        arch = torch.fx.symbolic_trace(arch)
    if mode == "no_grad":
        with torch.no_grad():
            torch.testing.assert_close(arch(dense, sparse), _pairwise_reference(dense, sparse))
        return
    d1, s1 = dense.clone().requires_grad_(), sparse.clone().requires_grad_()
    d2, s2 = dense.clone().requires_grad_(), sparse.clone().requires_grad_()
    out = arch(d1, s1)
    ref = _pairwise_reference(d2, s2)
    torch.testing.assert_close(out, ref)
    (out * grad_out).sum().backward()
    (ref * grad_out).sum().backward()
    torch.testing.assert_close(d1.grad, d2.grad)
    torch.testing.assert_close(s1.grad, s2.grad)
    assert not torch.equal(s1.grad, torch.zeros_like(s1.grad))


def test_interaction_arch_zero_features_passes_dense_through():
    dense, _ = _inputs()
    out = InteractionArch(0)(dense, torch.empty(B, 0, D))
    assert torch.equal(out, dense)


def test_interaction_arch_buffer_is_not_in_state_dict_but_old_checkpoints_load():
    arch = InteractionArch(F)
    expected = torch.tensor([[i, j] for i in range(F + 1) for j in range(i + 1, F + 1)]).T
    assert torch.equal(arch.triu_indices, expected)
    assert "triu_indices" in dict(arch.named_buffers())
    assert "triu_indices" not in arch.state_dict()
    # a checkpoint that carries the buffer still loads strictly
    wrapper = nn.Sequential(arch)
    result = wrapper.load_state_dict({"0.triu_indices": expected.clone()}, strict=True)
    assert not result.unexpected_keys and not result.missing_keys
    assert torch.equal(arch.triu_indices, expected)


@pytest.mark.parametrize(
    "dense_shape,sparse_shape",
    [((B, D), (B, F + 1, D)), ((B, D), (B, F, D + 1)), ((B, D), (B + 1, F, D)), ((B, D), (B, F * D)), ((B, D, 1), (B, F, D))],
)
@pytest.mark.parametrize("scripted", [False, True])
def test_interaction_shape_mismatch_is_a_clear_error(dense_shape, sparse_shape, scripted):
    arch = InteractionArch(F)
    if scripted:
        arch = _script(arch)
    with pytest.raises((ValueError, torch.jit.Error), match=r"must be \(B, "):
        arch(torch.randn(*dense_shape), torch.randn(*sparse_shape))


def test_interaction_dcn_arch_feeds_flattened_concat_to_crossnet():
    dense, sparse = _inputs()
    crossnet = LowRankCrossNet(in_features=(F + 1) * D, num_layers=2, low_rank=3)
    arch = InteractionDCNArch(num_sparse_features=F, crossnet=crossnet)
    flat = torch.stack([torch.cat([dense[b]] + [sparse[b, f] for f in range(F)]) for b in range(B)])
    torch.testing.assert_close(arch(dense, sparse), crossnet(flat))
    assert set(arch.state_dict()) == {f"crossnet.{n}.{i}" for n in ("W_kernels", "V_kernels", "bias") for i in range(2)}


def test_interaction_projection_arch_matches_manual_dots():
    dense, sparse = _inputs()
    p1, p2 = 3, 2
    b1 = DenseArch((F + 1) * D, [6, p1 * D])
    b2 = DenseArch((F + 1) * D, [p2 * D])
    arch = InteractionProjectionArch(F, interaction_branch1=b1, interaction_branch2=b2)
    out = arch(dense, sparse)
    assert out.shape == (B, D + p1 * p2)
    flat = torch.cat([dense, sparse.reshape(B, F * D)], dim=1)
    proj1, proj2 = b1(flat), b2(flat)
    for b in range(B):
        dots = [
            torch.dot(proj1[b, i * D:(i + 1) * D], proj2[b, j * D:(j + 1) * D])
            for i, j in itertools.product(range(p1), range(p2))
        ]
        torch.testing.assert_close(out[b], torch.cat([dense[b], torch.stack(dots)]))
    keys = set(arch.state_dict())
    assert "interaction_branch1.model._mlp.1._linear.weight" in keys
    assert "interaction_branch2.model._mlp.0._linear.bias" in keys


def test_over_arch_layout_and_math():
    arch = OverArch(in_features=8, layer_sizes=[6, 4, 1])
    assert {k: tuple(v.shape) for k, v in arch.state_dict().items()} == {
        "model.0._mlp.0._linear.weight": (6, 8),
        "model.0._mlp.0._linear.bias": (6,),
        "model.0._mlp.1._linear.weight": (4, 6),
        "model.0._mlp.1._linear.bias": (4,),
        "model.1.weight": (1, 4),
        "model.1.bias": (1,),
    }
    x = torch.randn(B, 8)
    h = x
    for layer in arch.model[0]._mlp:
        h = torch.relu(h @ layer._linear.weight.T + layer._linear.bias)
    logits = h @ arch.model[1].weight.T + arch.model[1].bias  # no activation on the logits
    torch.testing.assert_close(arch(x), logits)


@pytest.mark.parametrize("sizes", [[], [1]])
def test_over_arch_needs_two_layers(sizes):
    with pytest.raises(ValueError, match=r"OverArch.*at least 2"):
        OverArch(8, sizes)


def test_negative_feature_count_rejected():
    for make in (lambda: InteractionArch(-1), lambda: InteractionDCNArch(-1, nn.Identity()),
                 lambda: InteractionProjectionArch(-1, nn.Identity(), nn.Identity())):
        with pytest.raises(ValueError, match="num_sparse_features"):
            make()


def _all_arches():
    return [
        ("dense", DenseArch(6, [7, D]), (torch.randn(B, 6),)),
        ("over", OverArch(8, [6, 1]), (torch.randn(B, 8),)),
        ("interaction", InteractionArch(F), _inputs()),
        ("dcn", InteractionDCNArch(F, LowRankCrossNet((F + 1) * D, 2, 2)), _inputs()),
        ("projection", InteractionProjectionArch(F, DenseArch((F + 1) * D, [2 * D]), DenseArch((F + 1) * D, [D])),
         _inputs()),
    ]


@pytest.mark.parametrize("idx", range(5), ids=[a[0] for a in _all_arches()])
def test_scriptable_and_fx_traceable(idx):
    _, arch, args = _all_arches()[idx]
    expected = arch(*args)
    torch.testing.assert_close(_script(arch)(*args), expected)
    traced = torch.fx.symbolic_trace(arch)
    torch.testing.assert_close(traced(*args), expected)
    torch.testing.assert_close(_script(traced)(*args), expected)  # the inference export path: fx, then script


def test_meta_device_construction():
    dense = DenseArch(6, [7, D], device=torch.device("meta"))
    over = OverArch(8, [6, 1], device=torch.device("meta"))
    assert all(p.is_meta for p in list(dense.parameters()) + list(over.parameters()))
    assert over(torch.empty(B, 8, device="meta")).shape == (B, 1)
    inter = InteractionArch(F).to("meta")
    out = inter(torch.empty(B, D, device="meta"), torch.empty(B, F, D, device="meta"))
    assert out.shape == (B, D + F + choose(F, 2))
