"""DeepFM / FactorizationMachine against explicit pairwise loops."""

import itertools
import warnings

import pytest
import torch
from torch import nn

from recsys_lib.modules.deepfm import DeepFM, FactorizationMachine


def _inputs():
    torch.manual_seed(0)
    # mixed shapes: (B, F, D) and (B, D); flattened width 2*3 + 4 = 10
    return [torch.randn(3, 2, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)]


def test_fm_equals_sum_of_pairwise_products():
    embs = _inputs()
    out = FactorizationMachine()(embs)
    assert out.shape == (3, 1)
    flat = [torch.cat([e[b].reshape(-1) for e in embs]) for b in range(3)]
    expected = torch.stack(
        [sum(v[j] * v[k] for j, k in itertools.combinations(range(v.numel()), 2)) for v in flat]
    ).unsqueeze(1)
    torch.testing.assert_close(out, expected)


def test_fm_has_no_parameters():
    assert len(FactorizationMachine().state_dict()) == 0


def test_deepfm_applies_dense_module_to_flattened_input():
    embs = _inputs()
    dense = nn.Sequential(nn.Linear(10, 4), nn.ReLU()).double()
    out = DeepFM(dense_module=dense)(embs)
    x = torch.cat([embs[0].reshape(3, 6), embs[1]], dim=1)
    expected = torch.relu(x @ dense[0].weight.T + dense[0].bias)
    torch.testing.assert_close(out, expected)


def test_deepfm_state_dict_keys():
    m = DeepFM(dense_module=nn.Sequential(nn.Linear(10, 4), nn.ReLU()))
    assert {k: tuple(v.shape) for k, v in m.state_dict().items()} == {
        "dense_module.0.weight": (4, 10),
        "dense_module.0.bias": (4,),
    }


def test_scriptable():
    embs = [e.float() for e in _inputs()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fm = torch.jit.script(FactorizationMachine())
        deep_eager = DeepFM(nn.Sequential(nn.Linear(10, 2)))
        deep = torch.jit.script(deep_eager)
    torch.testing.assert_close(fm(embs), FactorizationMachine()(embs))
    torch.testing.assert_close(deep(embs), deep_eager(embs))


def test_bad_inputs():
    with pytest.raises(ValueError, match="non-empty"):
        FactorizationMachine()([])
    with pytest.raises(TypeError, match="nn.Module"):
        DeepFM(dense_module=lambda x: x)
