"""Cross networks against per-sample loops of the DCN / DCN-v2 formulas."""

import warnings

import pytest
import torch

from recsys_lib.modules.crossnet import CrossNet, LowRankCrossNet, LowRankMixtureCrossNet, VectorCrossNet

N, B = 6, 5


def _randomize(module):
    # biases start at zero; give every parameter random values so all terms are exercised
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return module.double()


def _rows(x):
    return [x[b].clone() for b in range(x.shape[0])]


def _ref_crossnet(m, x):
    out = []
    for x0 in _rows(x):
        xl = x0
        for W, b in zip(m.kernels, m.bias):
            xl = x0 * (W @ xl + b[:, 0]) + xl
        out.append(xl)
    return torch.stack(out)


def _ref_lowrank(m, x):
    out = []
    for x0 in _rows(x):
        xl = x0
        for W, V, b in zip(m.W_kernels, m.V_kernels, m.bias):
            xl = x0 * ((W @ V) @ xl + b) + xl
        out.append(xl)
    return torch.stack(out)


def _ref_vector(m, x):
    out = []
    for x0 in _rows(x):
        xl = x0
        for w, b in zip(m.kernels, m.bias):
            xl = x0 * torch.dot(xl, w[:, 0]) + b[:, 0] + xl
        out.append(xl)
    return torch.stack(out)


def _ref_mixture(m, x, act):
    E = m._num_experts
    out = []
    for x0 in _rows(x):
        xl = x0
        for layer in range(m._num_layers):
            experts = []
            for e in range(E):
                z = m.V_kernels[layer][e] @ xl  # V: (E, r, N), TorchRec's layout
                z = m.C_kernels[layer][e] @ act(z)
                z = m.U_kernels[layer][e] @ act(z)
                experts.append(x0 * (z + m.bias[layer][:, 0]))
            if E > 1:
                scores = torch.stack([torch.dot(m.gates[e].weight[0], xl) for e in range(E)])
                p = torch.exp(scores) / torch.exp(scores).sum()
                xl = xl + sum(p[e] * experts[e] for e in range(E))
            else:
                xl = xl + experts[0]
        out.append(xl)
    return torch.stack(out)


CASES = [
    ("crossnet", lambda: CrossNet(N, 3), _ref_crossnet),
    ("lowrank_r1", lambda: LowRankCrossNet(N, 2), _ref_lowrank),
    ("lowrank_r3", lambda: LowRankCrossNet(N, 3, low_rank=3), _ref_lowrank),
    ("vector", lambda: VectorCrossNet(N, 3), _ref_vector),
    ("mixture_e1", lambda: LowRankMixtureCrossNet(N, 2, num_experts=1, low_rank=2),
     lambda m, x: _ref_mixture(m, x, torch.relu)),
    ("mixture_e3", lambda: LowRankMixtureCrossNet(N, 2, num_experts=3, low_rank=2),
     lambda m, x: _ref_mixture(m, x, torch.relu)),
    ("mixture_tanh", lambda: LowRankMixtureCrossNet(N, 2, num_experts=2, low_rank=3, activation=torch.nn.Tanh()),
     lambda m, x: _ref_mixture(m, x, torch.tanh)),
]


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_matches_per_sample_formula(name, make, ref):
    torch.manual_seed(0)
    m = _randomize(make())
    x = torch.randn(B, N, dtype=torch.float64)
    out = m(x)
    assert out.shape == (B, N)
    torch.testing.assert_close(out, ref(m, x))


@pytest.mark.parametrize("name,make,ref", CASES, ids=[c[0] for c in CASES])
def test_scriptable(name, make, ref):
    m = make()
    x = torch.randn(B, N)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(m)
    torch.testing.assert_close(scripted(x), m(x))


def test_batch_of_one_keeps_batch_dim():
    m = LowRankMixtureCrossNet(N, 1, num_experts=2)
    assert m(torch.randn(1, N)).shape == (1, N)


def test_state_dict_keys_and_shapes():
    def shapes(m):
        return {k: tuple(v.shape) for k, v in m.state_dict().items()}

    assert shapes(CrossNet(4, 2)) == {"kernels.0": (4, 4), "kernels.1": (4, 4), "bias.0": (4, 1), "bias.1": (4, 1)}
    assert shapes(LowRankCrossNet(4, 1, low_rank=2)) == {"W_kernels.0": (4, 2), "V_kernels.0": (2, 4), "bias.0": (4,)}
    assert shapes(VectorCrossNet(4, 1)) == {"kernels.0": (4, 1), "bias.0": (4, 1)}
    assert shapes(LowRankMixtureCrossNet(4, 1, num_experts=2, low_rank=3)) == {
        "U_kernels.0": (2, 4, 3),
        "V_kernels.0": (2, 3, 4),
        "C_kernels.0": (2, 3, 3),
        "bias.0": (4, 1),
        "gates.0.weight": (1, 4),
        "gates.1.weight": (1, 4),
    }
    assert "gates.0.weight" not in shapes(LowRankMixtureCrossNet(4, 1, num_experts=1))


def test_initial_biases_are_zero_and_kernels_random():
    m = LowRankCrossNet(8, 2, low_rank=2)
    assert all(torch.count_nonzero(b) == 0 for b in m.bias)
    assert all(k.std() > 0 for k in m.W_kernels)
    # zero biases at init: a zero input stays zero through every layer
    assert torch.count_nonzero(m(torch.zeros(3, 8))) == 0


def test_meta_device_construction():
    with torch.device("meta"):
        m = LowRankCrossNet(8, 2, low_rank=2)
    assert all(p.is_meta for p in m.parameters())
    assert m(torch.empty(3, 8, device="meta")).shape == (3, 8)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: CrossNet(0, 2), "in_features"),
        (lambda: CrossNet(4, 0), "num_layers"),
        (lambda: LowRankCrossNet(4, 2, low_rank=0), "low_rank"),
        (lambda: VectorCrossNet(-1, 2), "in_features"),
        (lambda: LowRankMixtureCrossNet(4, 2, num_experts=0), "num_experts"),
        (lambda: LowRankMixtureCrossNet(4, 2, low_rank=0), "low_rank"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
