"""SimpleDeepFMNN and its arches against a hand-computed forward pass and TorchRec's keys."""

import pytest
import torch

from recsys_lib.models.deepfm import DenseArch, FMInteractionArch, OverArch, SimpleDeepFMNN
from tests.models._fixtures import B, D, make_ebc, make_kjt, pooled_by_hand

DENSE_IN, HIDDEN, DEEP = 5, 6, 3


def _model():
    torch.manual_seed(0)
    return SimpleDeepFMNN(DENSE_IN, make_ebc(), hidden_layer_size=HIDDEN, deep_fm_dimension=DEEP)


def test_state_dict_matches_torchrec_layout():
    fm_in = D + 3 * D
    shapes = {k: tuple(v.shape) for k, v in _model().state_dict().items()}
    assert shapes == {
        "sparse_arch.embedding_bag_collection.embedding_bags.t0.weight": (10, D),
        "sparse_arch.embedding_bag_collection.embedding_bags.t1.weight": (7, D),
        "dense_arch.model.0.weight": (HIDDEN, DENSE_IN),
        "dense_arch.model.0.bias": (HIDDEN,),
        "dense_arch.model.2.weight": (D, HIDDEN),
        "dense_arch.model.2.bias": (D,),
        "inter_arch.deep_fm.dense_module.0.weight": (DEEP, fm_in),
        "inter_arch.deep_fm.dense_module.0.bias": (DEEP,),
        "over_arch.model.0.weight": (1, D + DEEP + 1),
        "over_arch.model.0.bias": (1,),
    }


def test_forward_matches_hand_computation():
    model = _model()
    torch.manual_seed(2)
    dense = torch.randn(B, DENSE_IN)
    out = model(dense, make_kjt())
    assert out.shape == (B, 1)
    da = model.dense_arch.model
    d = torch.relu(torch.relu(dense @ da[0].weight.T + da[0].bias) @ da[2].weight.T + da[2].bias)
    pooled = pooled_by_hand(model.sparse_arch.embedding_bag_collection)
    x = torch.cat([d, pooled["f0"], pooled["f1"], pooled["f2"]], dim=1)  # (B, 4 * D)
    lin = model.inter_arch.deep_fm.dense_module[0]
    deep = torch.relu(x @ lin.weight.T + lin.bias)
    fm = torch.stack([sum(x[b, j] * x[b, k] for j in range(x.shape[1]) for k in range(j + 1, x.shape[1]))
                      for b in range(B)]).unsqueeze(1)
    over = model.over_arch.model[0]
    expected = torch.sigmoid(torch.cat([d, deep, fm], dim=1) @ over.weight.T + over.bias)
    torch.testing.assert_close(out, expected)
    assert ((out > 0) & (out < 1)).all()


def test_checkpoint_round_trip_strict():
    src = _model()
    torch.manual_seed(9)
    dst = SimpleDeepFMNN(DENSE_IN, make_ebc(), hidden_layer_size=HIDDEN, deep_fm_dimension=DEEP)
    with torch.no_grad():
        for p in dst.parameters():
            p.mul_(-1.0)
    dst.load_state_dict(src.state_dict(), strict=True)
    dense = torch.randn(B, DENSE_IN)
    torch.testing.assert_close(dst(dense, make_kjt()), src(dense, make_kjt()))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: SimpleDeepFMNN(DENSE_IN, make_ebc(dim_t1=D + 1), HIDDEN, DEEP), "embedding_dim"),
        (lambda: SimpleDeepFMNN(DENSE_IN, make_ebc(), 0, DEEP), "hidden_layer_size"),
        (lambda: SimpleDeepFMNN(DENSE_IN, make_ebc(), HIDDEN, 0), "deep_fm_dimension"),
        (lambda: DenseArch(0, HIDDEN, D), "in_features"),
        (lambda: FMInteractionArch(0, ["f0"], DEEP), "fm_in_features"),
        (lambda: OverArch(0), "in_features"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()
