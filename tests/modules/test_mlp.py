"""MLP / Perceptron against explicit matmuls, with TorchRec's state-dict keys."""

import warnings

import pytest
import torch
from torch import nn

from recsys_lib.modules.activation import SwishLayerNorm
from recsys_lib.modules.mlp import MLP, Perceptron


def _script(m):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(m)


def _manual_mlp(mlp, x, act):
    h = x
    for layer in mlp._mlp:
        h = act(h @ layer._linear.weight.T + layer._linear.bias)
    return h


def test_perceptron_matches_matmul():
    torch.manual_seed(0)
    p = Perceptron(3, 5, activation=torch.sigmoid)
    x = torch.randn(7, 3)
    expected = torch.sigmoid(x @ p._linear.weight.T + p._linear.bias)
    torch.testing.assert_close(p(x), expected)
    assert {k: tuple(v.shape) for k, v in p.state_dict().items()} == {"_linear.weight": (5, 3), "_linear.bias": (5,)}


def test_perceptron_without_bias():
    p = Perceptron(3, 2, bias=False)
    assert list(p.state_dict()) == ["_linear.weight"]
    x = torch.randn(4, 3)
    torch.testing.assert_close(p(x), torch.relu(x @ p._linear.weight.T))


@pytest.mark.parametrize(
    "activation,fn",
    [
        ("relu", torch.relu),
        ("sigmoid", torch.sigmoid),
        (torch.relu, torch.relu),
        (torch.tanh, torch.tanh),
        (nn.ReLU, torch.relu),  # module class: one instance per layer
        (nn.Sigmoid(), torch.sigmoid),  # module instance: shared
        (lambda: nn.Tanh(), torch.tanh),  # zero-argument factory
        (lambda t: t * 2.0, lambda t: t * 2.0),  # plain tensor callable
    ],
)
def test_mlp_activations_match_manual(activation, fn):
    torch.manual_seed(1)
    mlp = MLP(4, [6, 5, 3], activation=activation)
    x = torch.randn(8, 4)
    torch.testing.assert_close(mlp(x), _manual_mlp(mlp, x, fn))


def test_mlp_state_dict_keys_match_torchrec_layout():
    mlp = MLP(4, [6, 3])
    shapes = {k: tuple(v.shape) for k, v in mlp.state_dict().items()}
    assert shapes == {
        "_mlp.0._linear.weight": (6, 4),
        "_mlp.0._linear.bias": (6,),
        "_mlp.1._linear.weight": (3, 6),
        "_mlp.1._linear.bias": (3,),
    }


def test_swish_layernorm_string_builds_one_norm_per_layer():
    torch.manual_seed(2)
    mlp = MLP(4, [6, 3], activation="swish_layernorm")
    assert isinstance(mlp._mlp[0]._activation_fn, SwishLayerNorm)
    assert mlp._mlp[0]._activation_fn is not mlp._mlp[1]._activation_fn
    shapes = {k: tuple(v.shape) for k, v in mlp.state_dict().items()}
    assert shapes["_mlp.1._activation_fn.norm.0.weight"] == (3,)
    x = torch.randn(5, 4)
    h = x
    for layer in mlp._mlp:
        z = h @ layer._linear.weight.T + layer._linear.bias
        h = z * torch.sigmoid(nn.functional.layer_norm(z, z.shape[-1:]))
    torch.testing.assert_close(mlp(x), h)


def test_activation_on_last_false_leaves_last_layer_linear():
    torch.manual_seed(3)
    mlp = MLP(4, [6, 3], activation_on_last=False)
    x = torch.randn(5, 4)
    h = torch.relu(x @ mlp._mlp[0]._linear.weight.T + mlp._mlp[0]._linear.bias)
    expected = h @ mlp._mlp[1]._linear.weight.T + mlp._mlp[1]._linear.bias
    out = mlp(x)
    torch.testing.assert_close(out, expected)
    assert (out < 0).any()  # no relu on the output
    assert len(mlp.state_dict()) == 4


def test_mlp_no_bias_and_dtype():
    mlp = MLP(4, [3], bias=False, dtype=torch.float64)
    assert list(mlp.state_dict()) == ["_mlp.0._linear.weight"]
    assert mlp._mlp[0]._linear.weight.dtype == torch.float64


def test_meta_device():
    mlp = MLP(4, [6, 3], activation="swish_layernorm", device=torch.device("meta"))
    assert all(p.is_meta for p in mlp.parameters())
    out = mlp(torch.empty(2, 4, device="meta"))
    assert out.shape == (2, 3)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "swish_layernorm", nn.ReLU, torch.tanh])
def test_scriptable(activation):
    mlp = MLP(4, [6, 3], activation=activation, activation_on_last=False)
    x = torch.randn(5, 4)
    torch.testing.assert_close(_script(mlp)(x), mlp(x))


def test_gradients_flow():
    mlp = MLP(4, [6, 3], activation="sigmoid")
    mlp(torch.randn(5, 4)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mlp.parameters())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(in_size=0, layer_sizes=[3]), "in_size"),
        (dict(in_size=4, layer_sizes=[]), "layer_sizes"),
        (dict(in_size=4, layer_sizes=[3, 0]), r"layer_sizes\[1\]"),
        (dict(in_size=4, layer_sizes=[3], activation="gelu"), "gelu"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_bad_activation_type():
    with pytest.raises(TypeError, match="activation"):
        MLP(4, [3], activation=3)
    with pytest.raises(TypeError, match="nn.Module"):
        MLP(4, [3], activation=lambda: 5)
