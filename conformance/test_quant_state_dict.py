"""A TorchRec-quantized EBC/EC state dict loads strictly into recsys_lib's, and both give identical outputs."""

import pytest
import torch

torchrec = pytest.importorskip("torchrec")

import recsys_lib  # noqa: E402
from recsys_lib.modules.embedding_configs import QuantConfig  # noqa: E402
from recsys_lib.quant import embedding_modules as ours  # noqa: E402
from torchrec.modules.embedding_configs import QuantConfig as TrQuantConfig  # noqa: E402
from torchrec.quant import embedding_modules as theirs  # noqa: E402

DTYPES = [torch.qint8, torch.quint4x2, torch.quint2x4, torch.float16, torch.float32]


def _qconfig(cls, dtype, out=torch.float):
    obs = torch.ao.quantization.PlaceholderObserver
    return cls(activation=obs.with_args(dtype=out), weight=obs.with_args(dtype=dtype))


def _kjts(weighted: bool):
    ids = torch.tensor([1, 2, 4, 0, 3, 5, 7, 1, 2])
    lengths = torch.tensor([2, 1, 0, 3, 1, 2])
    w = torch.rand(9) if weighted else None
    ours_kjt = recsys_lib.KeyedJaggedTensor.from_lengths_sync(["f2", "f0", "f1"], ids, lengths, weights=w)
    their_kjt = torchrec.KeyedJaggedTensor.from_lengths_sync(["f2", "f0", "f1"], ids, lengths, weights=w)
    return ours_kjt, their_kjt


@pytest.mark.parametrize("split", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_ebc_state_dict_loads_strictly(dtype, split, weighted):
    torch.manual_seed(0)
    spec = [("t0", 10, 8, ["f0"], "SUM"), ("t1", 12, 16, ["f1", "f2"], "MEAN" if not weighted else "SUM")]
    mk_t = [torchrec.EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=n, feature_names=f,
                                        pooling=torchrec.PoolingType[p]) for n, r, d, f, p in spec]
    mk_o = [recsys_lib.EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=n, feature_names=f,
                                          pooling=recsys_lib.PoolingType[p]) for n, r, d, f, p in spec]
    t_ebc = torchrec.EmbeddingBagCollection(mk_t, is_weighted=weighted)
    o_ebc = recsys_lib.EmbeddingBagCollection(mk_o, is_weighted=weighted)
    t_ebc.qconfig = _qconfig(TrQuantConfig, dtype)
    o_ebc.qconfig = _qconfig(QuantConfig, dtype)
    if split:
        theirs.quant_prep_enable_quant_state_dict_split_scale_bias(t_ebc)
        ours.quant_prep_enable_quant_state_dict_split_scale_bias(o_ebc)
    t_q = theirs.EmbeddingBagCollection.from_float(t_ebc)
    o_q = ours.EmbeddingBagCollection.from_float(o_ebc)  # random other weights: overwritten below
    t_sd = t_q.state_dict()
    assert list(t_sd) == list(o_q.state_dict())
    o_q.load_state_dict(t_sd, strict=True)
    for k, v in o_q.state_dict().items():
        assert torch.equal(v.view(torch.uint8) if v.dtype == torch.uint8 else v,
                           t_sd[k].view(torch.uint8) if t_sd[k].dtype == torch.uint8 else t_sd[k]), k
    o_kjt, t_kjt = _kjts(weighted)
    got, want = o_q(o_kjt), t_q(t_kjt)
    assert got.keys() == want.keys()
    torch.testing.assert_close(got.values(), want.values(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ec_state_dict_loads_strictly(dtype):
    torch.manual_seed(0)
    t_ec = torchrec.EmbeddingCollection([torchrec.EmbeddingConfig(num_embeddings=10, embedding_dim=8, name="t0",
                                                                  feature_names=["f0", "f1", "f2"])])
    o_ec = recsys_lib.EmbeddingCollection([recsys_lib.EmbeddingConfig(num_embeddings=10, embedding_dim=8, name="t0",
                                                                      feature_names=["f0", "f1", "f2"])])
    t_ec.qconfig = _qconfig(TrQuantConfig, dtype)
    o_ec.qconfig = _qconfig(QuantConfig, dtype)
    t_q = theirs.EmbeddingCollection.from_float(t_ec)
    o_q = ours.EmbeddingCollection.from_float(o_ec)
    o_q.load_state_dict(t_q.state_dict(), strict=True)
    o_kjt, t_kjt = _kjts(False)
    got, want = o_q(o_kjt), t_q(t_kjt)
    assert sorted(got) == sorted(want)
    for k in want:
        torch.testing.assert_close(got[k].values(), want[k].values(), rtol=0, atol=0)
        assert torch.equal(got[k].lengths(), want[k].lengths())
