"""The test model zoo on one CPU process: forward and backward against plain-torch recomputations from the
models' own weights."""

import pytest
import torch
import torch.nn.functional as F_

from recsys_lib.distributed.test_utils.test_model import (
    ModelInput,
    TestDenseArch,
    TestEBCSparseArch,
    TestECSparseArch,
    TestOverArch,
    TestOverArchLarge,
    TestOverArchRegroupModule,
    TestSparseNN,
    TestTowerCollectionSparseNN,
    TestTowerInteraction,
    TestTowerSparseNN,
)
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig

B, W, NF = 3, 2, 6


def _tables():
    dims, rows, feats = [4, 8, 4, 12], [11, 23, 7, 17], [["a"], ["b", "c"], ["d"], ["e"]]
    return [EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=f"t{i}", feature_names=f)
            for i, (d, r, f) in enumerate(zip(dims, rows, feats))]


def _weighted():
    return [EmbeddingBagConfig(num_embeddings=13, embedding_dim=4, name="w0", feature_names=["wa", "wb"])]


def _batch(tables=None, weighted=None, seed=0):
    return ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF,
                               tables=tables if tables is not None else _tables(),
                               weighted_tables=weighted if weighted is not None else _weighted(),
                               pooling_avg=3, random_seed=seed)


def _pooled(weight, kjt, key, weighted=False):
    """Sum pooling by hand: ``(B, D)`` for one key."""
    jt = kjt[key]
    rows = []
    for ids, w in zip(torch.split(jt.values(), jt.lengths().tolist()),
                      torch.split(jt.weights() if weighted else torch.ones(jt.values().numel()), jt.lengths().tolist())):
        rows.append((weight[ids] * w.unsqueeze(1)).sum(0))
    return torch.stack(rows)


def _ebc_out(ebc, kjt, tables, weighted=False):
    return [_pooled(ebc.embedding_bags[t.name].weight, kjt, f, weighted) for t in tables for f in t.feature_names]


def test_sparse_nn_forward_backward_matches_plain_torch():
    torch.manual_seed(0)
    model = TestSparseNN(tables=_tables(), num_float_features=NF, weighted_tables=_weighted())
    assert list(model.state_dict()) == [
        "dummy_ones", "dense.dummy_param", "dense.dummy_buffer", "dense.linear.weight", "dense.linear.bias",
        *[f"sparse.ebc.embedding_bags.t{i}.weight" for i in range(4)], "sparse.weighted_ebc.embedding_bags.w0.weight",
        "over.dhn_arch.linear0.weight", "over.dhn_arch.linear0.bias", "over.dhn_arch.linear1.weight",
        "over.dhn_arch.linear1.bias"]
    glob, local = _batch()
    loss, pred = model(glob)

    dense = model.dense.linear(glob.float_features)
    sparse = _ebc_out(model.sparse.ebc, glob.idlist_features, _tables())
    sparse += _ebc_out(model.sparse.weighted_ebc, glob.idscore_features, _weighted(), weighted=True)
    over = model.over.dhn_arch
    hidden = torch.cat([dense] + sparse, dim=1)
    assert hidden.shape == (W * B, 8 + 4 + 16 + 4 + 12 + 8)
    want_pred = torch.sigmoid(over.linear1(over.linear0(hidden)).mean(1)) + 1.0
    want_loss = F_.binary_cross_entropy_with_logits(want_pred, glob.label)
    torch.testing.assert_close(pred, want_pred)
    torch.testing.assert_close(loss, want_loss)
    assert pred.shape == (W * B,) and loss.shape == ()

    grads = torch.autograd.grad(want_loss, [model.over.dhn_arch.linear0.weight, model.sparse.ebc.embedding_bags.t1.weight])
    model.zero_grad()
    loss.backward()
    torch.testing.assert_close(model.over.dhn_arch.linear0.weight.grad, grads[0])
    torch.testing.assert_close(model.sparse.ebc.embedding_bags.t1.weight.grad, grads[1])
    assert model.dense.dummy_param.grad is None  # present, unused

    model.eval()
    out = model(local[1])
    assert isinstance(out, torch.Tensor) and out.shape == (B,)
    torch.testing.assert_close(out, want_pred[B:])


def test_sparse_nn_variants():
    glob, _ = _batch(weighted=[])
    torch.manual_seed(1)
    plain = TestSparseNN(tables=_tables(), num_float_features=NF)
    assert plain.sparse.weighted_ebc is None
    loss, pred = plain(glob)
    assert pred.shape == (W * B,) and torch.isfinite(loss)

    # embedding_groups: the first group's features order the over arch input
    torch.manual_seed(1)
    order = ["e", "d", "c", "b", "a"]
    grouped = TestSparseNN(tables=_tables(), num_float_features=NF, embedding_groups={"g": order})
    grouped.load_state_dict(plain.state_dict())
    dense = grouped.dense.linear(glob.float_features)
    kts = grouped.sparse.ebc(glob.idlist_features)
    hidden = torch.cat([dense] + [kts[f] for f in order], dim=1)
    o = grouped.over.dhn_arch
    torch.testing.assert_close(grouped(glob)[1], torch.sigmoid(o.linear1(o.linear0(hidden)).mean(1)) + 1)

    # over arch classes and dense hidden layers via submodule_kwargs
    for clazz in (TestOverArchLarge, TestOverArchRegroupModule, TestOverArch):
        m = TestSparseNN(tables=_tables(), num_float_features=NF, weighted_tables=_weighted(), over_arch_clazz=clazz,
                         submodule_kwargs={"dense_arch_hidden_sizes": [5, 7]})
        assert isinstance(m.over, clazz) and len(m.dense.hidden_layers) == 2
        loss, pred = m(_batch()[0])
        assert pred.shape == (W * B,)
        loss.backward()
        assert m.sparse.weighted_ebc.embedding_bags.w0.weight.grad is not None

    # position-weighted tables (max_feature_lengths) go to fp_ebc
    m = TestSparseNN(tables=_tables(), num_float_features=NF, weighted_tables=_weighted(),
                     max_feature_lengths={"t1": 20})
    assert list(m.sparse.ebc.embedding_bags) == ["t0", "t2", "t3"]
    kt = m.sparse_forward(_batch()[0])
    assert kt.keys() == ["a", "d", "e", "b", "c", "wa", "wb"]

    postproc_calls = []

    class Post(torch.nn.Module):
        def forward(self, x):
            postproc_calls.append(1)
            return x

    m = TestSparseNN(tables=_tables(), num_float_features=NF, postproc_module=Post())
    m(glob)
    assert postproc_calls == [1]


def test_ec_sparse_nn_sum_pools_sequences():
    tables = [EmbeddingConfig(num_embeddings=r, embedding_dim=4, name=f"e{i}", feature_names=[f])
              for i, (r, f) in enumerate([(11, "a"), (7, "b")])]
    glob, _ = ModelInput.generate(batch_size=B, world_size=W, num_float_features=NF, tables=tables,
                                  weighted_tables=[], pooling_avg=3, random_seed=4)
    torch.manual_seed(2)
    model = TestSparseNN(tables=tables, num_float_features=NF)
    assert isinstance(model.sparse, TestECSparseArch)
    kt = model.sparse_forward(glob)
    for i, key in enumerate(["a", "b"]):
        torch.testing.assert_close(kt[key], _pooled(model.sparse.ec.embeddings[f"e{i}"].weight, glob.idlist_features, key))
    assert model(glob)[1].shape == (W * B,)


def test_archs():
    torch.manual_seed(3)
    dense = TestDenseArch(num_float_features=NF, dense_arch_out_size=5, dense_arch_hidden_sizes=[7])
    x = torch.randn(4, NF)
    torch.testing.assert_close(dense(x), dense.linear(dense.hidden_layers[0](x)))
    assert dense.dummy_buffer.shape == (1,) and dense.dummy_param.shape == (2,)
    with pytest.raises(ValueError, match="positive"):
        TestDenseArch(num_float_features=NF, dense_arch_hidden_sizes=[0])

    large = TestOverArchLarge(_tables(), _weighted(), over_arch_out_size=6, over_arch_hidden_layers=2)
    assert len(large.overarch) == 2 + 2 * 2 and large.overarch[0].in_features == 8 + 44
    repeated = TestOverArchLarge(_tables(), _weighted(), over_arch_hidden_layers=1, over_arch_hidden_repeat=2)
    assert len(repeated.overarch) == 13  # each repeat appends everything after the first linear: 4 -> 7 -> 13
    assert TestOverArchLarge(_tables(), _weighted(), skip_regroup=True).regroup_module is None

    sparse = TestEBCSparseArch(_tables(), _weighted())
    glob, local = _batch()
    kt = sparse(local[0].idlist_features, None, batch_size=B + 2)  # padded with zero rows
    assert kt.values().shape == (B + 2, 4 + 8 * 2 + 4 + 12) and not kt.values()[B:].any()

    over = TestOverArch(_tables(), _weighted())
    assert over(torch.randn(W * B, 8), sparse(glob.idlist_features, glob.idscore_features)).shape == (W * B, 16)


def test_tower_models():
    tables, weighted = _tables(), _weighted()
    glob, _ = _batch()
    torch.manual_seed(5)
    inter = TestTowerInteraction(tables=[tables[1], tables[0]])
    kt = TestEBCSparseArch(tables, [])(glob.idlist_features)
    torch.testing.assert_close(inter(kt), inter.linear(torch.cat([kt["b"], kt["c"], kt["a"]], dim=1)))

    for cls in (TestTowerSparseNN, TestTowerCollectionSparseNN):
        torch.manual_seed(6)
        model = cls(tables=tables, num_float_features=NF, weighted_tables=weighted)
        loss, pred = model(glob)
        assert pred.shape == (W * B,) and loss.shape == ()
        loss.backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if "dummy" not in n), cls.__name__
        model.eval()
        torch.testing.assert_close(model(glob), pred)
    tower = TestTowerSparseNN(tables=tables, num_float_features=NF, weighted_tables=weighted)
    assert tower.over.in_features == 8 + (4 + 12) + 4 + 16 + 8
    with pytest.raises(ValueError, match="4 tables"):
        TestTowerSparseNN(tables=tables[:3], weighted_tables=weighted)
