"""Quantized EBC / EC / FP-EBC against plain-torch oracles on identical weights, per dtype."""

import pytest
import torch

import recsys_lib
from recsys_lib import EmbeddingBagCollection, EmbeddingCollection, EmbeddingConfig, KeyedJaggedTensor
from recsys_lib.modules.feature_processor_ import PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.quant import embedding_modules as qm
from recsys_lib.quant._kernels import kernel_inputs, pooled_reference
from recsys_lib.quant._rows import dequantize_rows
from tests.quant._helpers import DTYPES, bag_tables, batch, fake_quant_rows, pooled_oracle, qconfig


def _float_ebc(weighted: bool, mean: bool = False) -> EmbeddingBagCollection:
    torch.manual_seed(0)
    return EmbeddingBagCollection(bag_tables(mean), is_weighted=weighted)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ebc_matches_fake_quantised_oracle(dtype, weighted):
    ebc = _float_ebc(weighted, mean=not weighted)
    ebc.qconfig = qconfig(dtype)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    bits = DTYPES[dtype][1]
    dense = {t.name: fake_quant_rows(ebc.embedding_bags[t.name].weight.detach(), bits) for t in bag_tables()}
    for seed in range(3):
        kjt = batch(weighted, seed)
        got = q(kjt).to_dict()
        want = pooled_oracle(bag_tables(mean=not weighted), dense, kjt, weighted)
        assert sorted(got) == sorted(want)
        for f in want:
            torch.testing.assert_close(got[f], want[f], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint4x2, torch.quint2x4])
def test_ebc_error_within_quantisation_step(dtype):
    ebc = _float_ebc(weighted=False)
    ebc.qconfig = qconfig(dtype)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    bits = DTYPES[dtype][1]
    kjt = batch(False, 1)
    got, want = q(kjt).to_dict(), ebc(kjt).to_dict()
    worst_step = 0.0
    for t in bag_tables():
        w = ebc.embedding_bags[t.name].weight.detach()
        worst_step = max(worst_step, float(((w.max(1).values - w.min(1).values) / (2 ** bits - 1)).max()))
    max_bag = int(kjt.lengths().max())
    for f in want:
        err = (got[f] - want[f].detach()).abs().max().item()
        # half a step per id, plus fp16 rounding of scale and bias
        assert err <= max_bag * (worst_step / 2 + 2e-3), (f, err)
    # and the error is not trivially zero: quantisation happened
    assert any((got[f] - want[f]).abs().max() > 0 for f in want)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_fbgemm_kernel_equals_plain_torch_reference(dtype, weighted):
    ebc = _float_ebc(weighted)
    ebc.qconfig = qconfig(dtype)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    assert q._use_tbe  # fbgemm-gpu-cpu is a requirement: the fast path runs here
    kjt = batch(weighted, 2)
    inputs = kernel_inputs(kjt, q._feature_order, q._all_features, q._group_bounds, q._rows_per_feature,
                           q._table_per_feature, weighted, "test")
    ref = torch.cat([
        pooled_reference(inputs[g][0], inputs[g][1], inputs[g][2], q._group_rows[g], q._group_dims[g],
                         q._group_types[g], q._group_maps[g], q._group_mean[g], torch.float32)
        for g in range(len(inputs))
    ], dim=1)
    torch.testing.assert_close(q(kjt).values(), ref, rtol=1e-5, atol=1e-6)


def test_output_dtype_half():
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(torch.qint8, output_dtype=torch.float16)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    assert q.output_dtype() == torch.float16
    ebc.qconfig = qconfig(torch.qint8)
    q32 = qm.EmbeddingBagCollection.from_float(ebc)
    kjt = batch(False, 0)
    out = q(kjt).values()
    assert out.dtype == torch.float16
    torch.testing.assert_close(out, q32(kjt).values().half())


def test_pruned_table_keeps_first_rows_and_rejects_pruned_ids():
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(torch.float32)
    setattr(ebc, qm.MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT, {"t1": 5})
    q = qm.EmbeddingBagCollection.from_float(ebc)
    assert q.state_dict()["embedding_bags.t1.weight"].shape == (5, 64)
    assert q.embedding_bag_configs()[1].num_embeddings_post_pruning == 5
    assert ebc.embedding_bag_configs()[1].num_embeddings_post_pruning is None  # float configs untouched
    kjt = KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([3, 4, 0, 2, 1]),
                                              torch.tensor([1, 1, 2, 0, 1, 0]))
    torch.testing.assert_close(q(kjt).values(), ebc(kjt).values().detach())
    bad = KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([3, 5]), torch.tensor([1, 0, 1, 0, 0, 0]))
    with pytest.raises(ValueError, match="table 't1'.*\\[0, 5\\)"):
        q(bad)


@pytest.mark.parametrize("dtype", [torch.qint8, torch.quint4x2, torch.float16])
def test_split_scale_bias_state_dict_round_trip(dtype):
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(dtype)
    qm.quant_prep_enable_quant_state_dict_split_scale_bias(ebc)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    sd = q.state_dict()
    int_type = dtype != torch.float16
    assert ("embedding_bags.t0.weight_qscale" in sd) == int_type
    if int_type:
        assert sd["embedding_bags.t0.weight_qscale"].shape == (11, 1)
        assert sd["embedding_bags.t0.weight_qscale"].dtype == torch.float16
    torch.manual_seed(1)
    other = EmbeddingBagCollection(bag_tables())
    other.qconfig = qconfig(dtype)
    qm.quant_prep_enable_quant_state_dict_split_scale_bias(other)
    q2 = qm.EmbeddingBagCollection.from_float(other)
    kjt = batch(False, 0)
    assert not torch.equal(q2(kjt).values(), q(kjt).values())
    q2.load_state_dict(sd, strict=True)
    assert torch.equal(q2(kjt).values(), q(kjt).values())


def test_register_tbes_exposes_kernel_buffers():
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(torch.qint8)
    assert not any(k.startswith("tbes.") for k in qm.EmbeddingBagCollection.from_float(ebc).state_dict())
    qm.quant_prep_enable_register_tbes(ebc, [EmbeddingBagCollection])
    keys = list(qm.EmbeddingBagCollection.from_float(ebc).state_dict())
    assert "tbes.0.D_offsets" in keys and "embedding_bags.t0.weight" in keys


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_ec_matches_fake_quantised_rows(dtype):
    torch.manual_seed(0)
    tables = [EmbeddingConfig(num_embeddings=11, embedding_dim=8, name="a", feature_names=["f0", "f1"]),
              EmbeddingConfig(num_embeddings=13, embedding_dim=8, name="b", feature_names=["f2"])]
    ec = EmbeddingCollection(tables, need_indices=True)
    ec.qconfig = qconfig(dtype)
    q = qm.EmbeddingCollection.from_float(ec)
    bits = DTYPES[dtype][1]
    kjt = batch(False, 3)
    got = q(kjt)
    jts = kjt.to_dict()
    for t in tables:
        dense = fake_quant_rows(ec.embeddings[t.name].weight.detach(), bits)
        for f in t.feature_names:
            torch.testing.assert_close(got[f].values(), dense[jts[f].values()], rtol=1e-6, atol=1e-6)
            assert torch.equal(got[f].lengths(), jts[f].lengths())
            assert torch.equal(got[f].weights(), jts[f].values())


def test_fp_ebc_matches_float_within_int8_step():
    torch.manual_seed(0)
    fp = FeatureProcessedEmbeddingBagCollection(
        EmbeddingBagCollection(bag_tables(), is_weighted=True),
        PositionWeightedModuleCollection({"f0": 4, "f1": 4, "f2": 4}),
    )
    with torch.no_grad():
        for p in fp.parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    fp.qconfig = qconfig(torch.float32)
    q = qm.FeatureProcessedEmbeddingBagCollection.from_float(fp)
    assert any(k.startswith("feature_processor.") for k in q.state_dict())
    kjt = batch(False, 4)
    torch.testing.assert_close(q(kjt).values(), fp(kjt).values().detach())


def test_dequantize_rows_of_state_dict_equals_oracle():
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(torch.quint4x2)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    rows = q.state_dict()["embedding_bags.t1.weight"].view(torch.uint8)
    want = fake_quant_rows(ebc.embedding_bags["t1"].weight.detach(), 4)
    torch.testing.assert_close(dequantize_rows(rows, 16, recsys_lib.DataType.INT4), want)


def test_bad_inputs_raise_clear_errors():
    ebc = _float_ebc(False)
    ebc.qconfig = qconfig(torch.bfloat16)
    with pytest.raises(ValueError, match="weight dtype torch.bfloat16"):
        qm.EmbeddingBagCollection.from_float(ebc)
    cfg = [recsys_lib.EmbeddingBagConfig(num_embeddings=4, embedding_dim=6, name="x", feature_names=["f"],
                                         data_type=recsys_lib.DataType.INT8)]
    with pytest.raises(ValueError, match="embedding_dim 6 must be a positive multiple of 4"):
        qm.EmbeddingBagCollection(cfg, is_weighted=False, device=torch.device("cpu"))
    cfg[0].embedding_dim, cfg[0].data_type = 4, recsys_lib.DataType.INT2
    with pytest.raises(ValueError, match="multiple of 8 for data_type INT2"):
        qm.EmbeddingBagCollection(cfg, is_weighted=False, device=torch.device("cpu"))
    cfg[0].data_type = recsys_lib.DataType.BF16
    with pytest.raises(ValueError, match="data_type BF16 is not supported"):
        qm.EmbeddingBagCollection(cfg, is_weighted=False, device=torch.device("cpu"))
    ebc.qconfig = qconfig(torch.qint8)
    q = qm.EmbeddingBagCollection.from_float(ebc)
    with pytest.raises(ValueError, match="table 't0': ids must be in \\[0, 11\\), got min 11 max 11"):
        q(KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([11, 0]), torch.tensor([1, 1, 0])))
    # A feature no table reads is ignored (TorchRec feeds one KJT to several collections).
    with_extra = q(KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2", "zz"], torch.tensor([1, 7]),
                                                       torch.tensor([1, 0, 0, 1])))
    without = q(KeyedJaggedTensor.from_lengths_sync(["f0", "f1", "f2"], torch.tensor([1]), torch.tensor([1, 0, 0])))
    torch.testing.assert_close(with_extra.values(), without.values(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="is_weighted=True\\) needs a KeyedJaggedTensor with weights"):
        w = _float_ebc(True)
        w.qconfig = qconfig(torch.qint8)
        qm.EmbeddingBagCollection.from_float(w)(batch(False))
    del ebc.qconfig
    with pytest.raises(ValueError, match="has no qconfig"):
        qm.EmbeddingBagCollection.from_float(ebc)
