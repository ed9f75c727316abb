"""The zoo's preprocessing, managed-collision and mixed pooled + sequence models on one CPU process, checked
against plain-torch recomputations."""

from types import SimpleNamespace

import pytest
import torch

from recsys_lib.distributed.test_utils.test_model import (
    ModelInput,
    TestEBCSparseArchZCH,
    TestMixedEmbeddingSparseArch,
    TestMixedSequenceOverArchLargeActivation,
    TestModelWithPreproc,
    TestModelWithPreprocCollectionArgs,
    TestNegSamplingModule,
    TestPositionWeightedPreprocModule,
    TestSparseNN,
)
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig

B, W, NF = 3, 2, 5


def _pooled(weight, kjt, key, weighted=False):
    jt = kjt[key]
    w = jt.weights() if weighted else torch.ones(jt.values().numel())
    return torch.stack([(weight[i] * s.unsqueeze(1)).sum(0) for i, s in
                        zip(torch.split(jt.values(), jt.lengths().tolist()), torch.split(w, jt.lengths().tolist()))])


def _preproc_tables():
    tables = [EmbeddingBagConfig(num_embeddings=10 + i, embedding_dim=4, name=f"table_{i}",
                                 feature_names=[f"feature_{i}"]) for i in range(3)]
    extra = EmbeddingBagConfig(num_embeddings=9, embedding_dim=4, name="table_3", feature_names=["feature_3"])
    weighted = [EmbeddingBagConfig(num_embeddings=8, embedding_dim=4, name="weighted_table_0",
                                   feature_names=["weighted_feature_0"])]
    return tables, extra, weighted


def test_model_with_preproc():
    tables, extra, weighted = _preproc_tables()
    glob, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF, tables=tables + [extra],
                                  weighted_tables=weighted, pooling_avg=3, random_seed=1)
    torch.manual_seed(0)
    model = TestModelWithPreproc(tables, weighted, torch.device("cpu"), num_float_features=NF)
    total, pred = model(glob)
    want = torch.cat([_pooled(model.ebc.embedding_bags[f"table_{i}"].weight, glob.idlist_features, f"feature_{i}")
                      for i in range(3)]
                     + [_pooled(model.weighted_ebc.embedding_bags["weighted_table_0"].weight, glob.idscore_features,
                                "weighted_feature_0", weighted=True)], dim=1)
    torch.testing.assert_close(pred, want)
    torch.testing.assert_close(total, want.sum())
    inline = TestModelWithPreproc(tables, weighted, torch.device("cpu"), num_float_features=NF,
                                  run_postproc_inline=True)
    inline.load_state_dict(model.state_dict())
    torch.testing.assert_close(inline(glob)[1], want)

    calls = []

    class Outer(torch.nn.Module):
        def forward(self, x):
            return x.float_features * 2

    class Nested(torch.nn.Module):
        def forward(self, x, as_list, as_dict):
            calls.append((as_list, as_dict))
            return x

    args_model = TestModelWithPreprocCollectionArgs(tables, weighted, torch.device("cpu"), Outer(), Nested(), NF)
    args_model.load_state_dict(model.state_dict())
    torch.testing.assert_close(args_model(glob)[1], want)
    (as_list, as_dict), = calls
    assert as_list[0] == 1 and as_list[1] is glob.float_features
    torch.testing.assert_close(as_list[2], glob.float_features * 2)
    assert as_dict["const"] == 1 and as_dict["tensor_from_input"] is glob.float_features
    torch.testing.assert_close(as_dict["tensor_from_postproc"], glob.float_features * 2)


def test_neg_sampling_and_position_weighted_preproc():
    tables, _, weighted = _preproc_tables()
    glob, local = ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF, tables=tables,
                                      weighted_tables=weighted, pooling_avg=3, random_seed=2)
    neg = TestNegSamplingModule(local[0], has_params=True)
    assert neg.test_buffer.shape == (1,) and neg._linear.in_features == 30
    out = neg(local[1])
    torch.testing.assert_close(out.float_features, torch.cat([local[1].float_features, local[0].float_features]))
    torch.testing.assert_close(out.label, torch.cat([local[1].label, local[0].label]))
    assert out.idlist_features.keys() == local[1].idlist_features.keys() * 2  # KJT.concat appends keys
    torch.testing.assert_close(out.idlist_features.values(), torch.cat(
        [local[1].idlist_features.values(), local[0].idlist_features.values()]))
    assert local[1].float_features.size(0) == B  # the input is not modified

    pw = TestPositionWeightedPreprocModule({"feature_0": 6, "feature_1": 6, "feature_2": 6}, torch.device("cpu"))
    with torch.no_grad():
        for p in pw.fp_proc.position_weights.values():
            p.copy_(torch.arange(1.0, 7.0))
    moved = pw(glob)
    assert glob.idlist_features.weights_or_none() is None
    jt = moved.idlist_features["feature_1"]
    positions = torch.cat([torch.arange(n) for n in jt.lengths().tolist()])
    torch.testing.assert_close(jt.weights(), positions.float().clamp(max=5) + 1)


def test_zch_sparse_arch():
    tables = [EmbeddingBagConfig(num_embeddings=16, embedding_dim=4, name="t0", feature_names=["f0"]),
              EmbeddingBagConfig(num_embeddings=16, embedding_dim=4, name="t1", feature_names=["f1"])]
    weighted = [EmbeddingBagConfig(num_embeddings=16, embedding_dim=4, name="w0", feature_names=["wf"])]
    zch = {
        "t0": SimpleNamespace(mc_type="sort-zch", input_hash_size=1000),
        "t1": SimpleNamespace(mc_type="mp-zch", input_hash_size=1000, total_num_buckets=4, max_probe=4,
                              eviction_policy_name=None, eviction_config=None, opt_in_prob=-1,
                              percent_reserved_slots=0, disable_fallback=False),
        "w0": SimpleNamespace(mc_type="sort-zch", input_hash_size=1000),
    }
    glob, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF, tables=tables,
                                  weighted_tables=weighted, pooling_avg=3, random_seed=3)
    arch = TestEBCSparseArchZCH(tables, weighted, torch.device("cpu"), zch_kwargs=zch)
    kt = arch(glob.idlist_features, glob.idscore_features, batch_size=W * B + 1)
    assert kt.keys() == ["f0", "f1", "wf"] and kt.values().shape == (W * B + 1, 12)
    assert not kt.values()[-1].any()
    # each bag is a sum of rows of its table after remapping: compare with the remapped ids the MC EBC returns
    remapped = TestEBCSparseArchZCH(tables, weighted, torch.device("cpu"), zch_kwargs=zch, return_remapped=True)
    remapped.load_state_dict(arch.state_dict())
    _, ids = remapped.ebc(glob.idlist_features)
    assert ids is not None and int(ids.values().max()) < 16
    with pytest.raises(ValueError, match="mc_type"):
        TestEBCSparseArchZCH(tables, [], torch.device("cpu"), zch_kwargs={**zch, "t0": SimpleNamespace(mc_type="x")})
    model = TestSparseNN(tables=tables, num_float_features=NF, weighted_tables=weighted, zch_kwargs=zch)
    assert isinstance(model.sparse, TestEBCSparseArchZCH)
    assert model.sparse.ebc._embedding_module.embedding_bags["t0"].weight.is_meta


def test_mixed_embedding_sparse_arch():
    bag = [EmbeddingBagConfig(num_embeddings=11, embedding_dim=4, name="b0", feature_names=["fb"])]
    seq = [EmbeddingConfig(num_embeddings=13, embedding_dim=3, name="s0", feature_names=["fs0", "fs1"])]
    glob, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF, tables=bag + seq,
                                  weighted_tables=[], pooling_avg=12, tables_pooling=[4, 25], random_seed=4)
    torch.manual_seed(5)
    model = TestMixedEmbeddingSparseArch(tables=bag + seq, num_float_features=NF)
    sparse = model.sparse_forward(glob)
    assert sparse.shape == (W * B, 4 + 2 * 20 * 3)
    parts = [_pooled(model.ebc.embedding_bags["b0"].weight, glob.idlist_features, "fb")]
    table = model.ec.embeddings["s0"].weight
    for key in ("fs0", "fs1"):
        jt = glob.idlist_features[key]
        rows = []
        for ids in torch.split(jt.values(), jt.lengths().tolist()):
            padded = torch.zeros(20, 3)
            padded[:min(20, ids.numel())] = table[ids[:20]]
            rows.append(padded.flatten())
        parts.append(torch.stack(rows))
    torch.testing.assert_close(sparse, torch.cat(parts, dim=1))
    assert int(glob.idlist_features["fs1"].lengths().max()) > 20  # the cut at 20 positions is exercised
    loss, pred = model(glob)
    o = model.over.linear
    want = torch.sigmoid(o(torch.cat([model.dense(glob.float_features), sparse], dim=1)).mean(1)) + 1
    torch.testing.assert_close(pred, want)
    loss.backward()
    assert model.ec.embeddings["s0"].weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="CUDA"):
        if torch.cuda.is_available():
            raise RuntimeError("CUDA present: stashing is exercised on GPU runs only")
        TestMixedEmbeddingSparseArch(tables=bag + seq, enable_activation_stashing=True)

    large = TestMixedSequenceOverArchLargeActivation(bag, seq, [], over_arch_hidden_layers=2, large_activation_dim=8)
    assert len(large.overarch) == 2 + 2 * 2 + 1 and large.overarch[0].in_features == 8 + 4 + 2 * 3 * 20
    assert large(torch.randn(2, 8), torch.randn(2, 124)).shape == (2, 16)
