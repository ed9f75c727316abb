"""SwishLayerNorm against a hand-written layer norm + sigmoid gate."""

import warnings

import pytest
import torch

from recsys_lib.modules.activation import SwishLayerNorm


def _reference(x, weight, bias, ndim, eps=1e-5):
    dims = tuple(range(x.dim() - ndim, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    normed = (x - mean) / torch.sqrt(var + eps) * weight + bias
    return x * (1.0 / (1.0 + torch.exp(-normed)))


@pytest.mark.parametrize("input_dims", [6, [3, 6], torch.Size([3, 6])])
def test_matches_manual_formula(input_dims):
    torch.manual_seed(0)
    act = SwishLayerNorm(input_dims)
    with torch.no_grad():  # non-trivial affine parameters so they are exercised
        act.norm[0].weight.uniform_(0.5, 1.5)
        act.norm[0].bias.uniform_(-0.5, 0.5)
    x = torch.randn(4, 3, 6)
    ndim = 1 if isinstance(input_dims, int) else len(input_dims)
    expected = _reference(x, act.norm[0].weight, act.norm[0].bias, ndim)
    torch.testing.assert_close(act(x), expected)


def test_state_dict_keys_and_meta_device():
    act = SwishLayerNorm(5, device=torch.device("meta"))
    shapes = {k: tuple(v.shape) for k, v in act.state_dict().items()}
    assert shapes == {"norm.0.weight": (5,), "norm.0.bias": (5,)}
    assert act.norm[0].weight.is_meta


def test_scriptable():
    act = SwishLayerNorm([2, 3])
    x = torch.randn(4, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(act)
    torch.testing.assert_close(scripted(x), act(x))


@pytest.mark.parametrize("bad", [0, -2, [], [4, 0]])
def test_bad_dims(bad):
    with pytest.raises(ValueError, match="input_dims"):
        SwishLayerNorm(bad)
