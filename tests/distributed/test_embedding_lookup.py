"""Grouped lookups against per-table plain PyTorch; grouping rules; small helpers."""

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.embedding_lookup import (
    CommOpGradientScaling,
    GroupedEmbeddingsLookup,
    GroupedPooledEmbeddingsLookup,
    dummy_tensor,
    embeddings_cat_empty_rank_handle,
    fx_wrap_tensor_view2d,
)
from recsys_lib.distributed.embedding_sharding import group_tables
from recsys_lib.distributed.embedding_types import EmbeddingComputeKernel
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.types import DataType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._embedding_refs import pooled_reference, random_kjt, sequence_reference, table

FUSED, DENSE = EmbeddingComputeKernel.FUSED, EmbeddingComputeKernel.DENSE
SUM, MEAN, NONE = PoolingType.SUM, PoolingType.MEAN, PoolingType.NONE
SGD = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": 0.1}


def _pooled_tables():
    # Mixed kernels, poolings, weighting and dims; grouped into 4 kernels.
    return [
        table("a", 9, 4, ["fa"], FUSED, SUM, fused_params=SGD),
        table("b", 6, 8, ["fb1", "fb2"], FUSED, MEAN, fused_params=SGD),
        table("c", 5, 12, ["fc"], DENSE, SUM),
        table("d", 7, 16, ["fd"], FUSED, SUM, fused_params=SGD),
    ]


def _features_in_group_order(groups):
    return [f for g in groups for f in g.feature_names()]


def test_group_tables_rules():
    t = _pooled_tables()
    grouped = group_tables([t, [], [t[2]]])
    assert [g.table_names() for g in grouped[0]] == [["a", "d"], ["b"], ["c"]]
    assert grouped[1] == [] and [g.table_names() for g in grouped[2]] == [["c"]]
    g = grouped[0][0]
    assert (g.pooling, g.compute_kernel, g.data_type, g.fused_params) == (SUM, FUSED, DataType.FP32, SGD)
    # Different fused params, weighting, or an explicit one-TBE-per-table request split groups.
    lr2 = dict(SGD, learning_rate=0.2)
    split = group_tables([[
        table("a", 9, 4, ["fa"], FUSED, fused_params=SGD),
        table("e", 9, 4, ["fe"], FUSED, fused_params=lr2),
        table("w", 9, 4, ["fw"], FUSED, weighted=True, fused_params=SGD),
        table("o1", 9, 4, ["fo1"], FUSED, fused_params=dict(SGD, use_one_tbe_per_table=True)),
        table("o2", 9, 4, ["fo2"], FUSED, fused_params=dict(SGD, use_one_tbe_per_table=True)),
    ]])[0]
    assert [g.table_names() for g in split] == [["a"], ["e"], ["w"], ["o1"], ["o2"]]
    assert "use_one_tbe_per_table" not in split[3].fused_params
    assert split[2].is_weighted


def test_pooled_lookup_matches_reference_and_exposes_tables():
    groups = group_tables([_pooled_tables()])[0]
    lookup = GroupedPooledEmbeddingsLookup(groups)
    keys = _features_in_group_order(groups)
    assert keys == ["fa", "fd", "fb1", "fb2", "fc"]
    rows = {"fa": 9, "fd": 7, "fb1": 6, "fb2": 6, "fc": 5}
    kjt = random_kjt(keys, [rows[k] for k in keys], 4, seed=2)
    out = lookup(kjt)
    assert out.shape == (4, 4 + 16 + 8 + 8 + 12)
    sd = lookup.state_dict()
    assert sorted(sd) == ["a.weight", "b.weight", "c.weight", "d.weight"]
    # One reference per group, concatenated in group order.
    expected = []
    parts = kjt.split([g.num_features() for g in groups])
    for g, part in zip(groups, parts):
        weights = [sd[f"{t}.weight"] for t in g.table_names()]
        ftm = [i for i, t in enumerate(g.embedding_tables) for _ in t.feature_names]
        expected.append(pooled_reference(weights, ftm, part, "mean" if g.pooling == MEAN else "sum"))
    torch.testing.assert_close(out, torch.cat(expected, dim=1))
    names = [n for n, _ in lookup.named_parameters()]
    assert names == ["a.weight", "d.weight", "b.weight", "c.weight"]
    assert [n for n, _ in lookup.named_parameters_by_table()] == ["a", "d", "b", "c"]
    assert list(lookup.named_buffers()) == []


def test_pooled_lookup_backward_updates_fused_and_grads_dense():
    groups = group_tables([_pooled_tables()])[0]
    lookup = GroupedPooledEmbeddingsLookup(groups)
    keys = _features_in_group_order(groups)
    kjt = random_kjt(keys, [9, 7, 6, 6, 5], 3, seed=3)
    before = {k: v.clone() for k, v in lookup.state_dict().items()}
    lookup(kjt).sum().backward()
    after = lookup.state_dict()
    assert not torch.equal(after["a.weight"], before["a.weight"])  # fused: updated in backward
    assert torch.equal(after["c.weight"], before["c.weight"])      # dense: waits for its optimizer
    dense_grad = dict(lookup.named_parameters_by_table())["c"].grad
    assert dense_grad is not None and float(dense_grad.abs().sum()) > 0


def test_lookup_load_state_dict():
    groups = group_tables([_pooled_tables()])[0]
    a, b = GroupedPooledEmbeddingsLookup(groups), GroupedPooledEmbeddingsLookup(groups)
    result = b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == []
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)
    with pytest.raises(KeyError, match="zz.weight"):
        b.load_state_dict(dict(a.state_dict(), **{"zz.weight": torch.zeros(1)}))


def test_empty_rank_outputs_placeholders():
    kjt = random_kjt(["f"], [3], 6, seed=0)
    pooled = GroupedPooledEmbeddingsLookup([])(kjt)
    assert pooled.shape == (6, 0) and pooled.requires_grad
    seq = GroupedEmbeddingsLookup([])(kjt)
    assert seq.shape == (0, 0)


@pytest.mark.parametrize("dims", [(8, 8), (8, 4)])
def test_sequence_lookup_matches_embedding(dims):
    tables = [
        table("a", 9, dims[0], ["fa"], FUSED, NONE, fused_params=SGD),
        table("b", 6, dims[1], ["fb"], DENSE, NONE),
    ]
    groups = group_tables([tables])[0]
    assert len(groups) == 2
    lookup = GroupedEmbeddingsLookup(groups)
    kjt = random_kjt(["fa", "fb"], [9, 6], 4, seed=5)
    out = lookup(kjt)
    sd = lookup.state_dict()
    expected = sequence_reference([sd["a.weight"], sd["b.weight"]], [0, 1], kjt, flat=dims[0] != dims[1])
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)


def test_unsupported_kernel_is_named():
    with pytest.raises(ValueError, match="'quant' is not supported"):
        GroupedPooledEmbeddingsLookup(group_tables([[table("q", 4, 4, ["f"], EmbeddingComputeKernel.QUANT)]])[0])


def test_helpers():
    x = torch.randn(3, requires_grad=True)
    CommOpGradientScaling.apply(x, 4).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 4.0))  # TorchRec multiplies by the factor
    kjt = KeyedJaggedTensor.from_lengths_sync(keys=["f"], values=torch.tensor([1]), lengths=torch.tensor([1]))
    d = dummy_tensor(kjt, torch.float16)
    assert d.shape == (0,) and d.requires_grad and d.dtype == torch.float16 and d.device == kjt.device()
    assert embeddings_cat_empty_rank_handle([], d) is d
    one = torch.ones(2, 3)
    assert embeddings_cat_empty_rank_handle([one], d) is one
    assert embeddings_cat_empty_rank_handle([one, one], d, dim=1).shape == (2, 6)
    assert fx_wrap_tensor_view2d(torch.arange(6), 2, 3).shape == (2, 3)


class _FakeGroup:
    """Stands in for a process group of 4 ranks (the lookup only asks its size)."""

    def size(self):
        return 4


@pytest.mark.parametrize("sharding_type,factor", [("table_wise", 4.0), ("data_parallel", 1.0)])
def test_weight_gradients_scaled_by_world_size(sharding_type, factor):
    tables = [table("w", 9, 4, ["fw"], DENSE, SUM, weighted=True)]
    groups = group_tables([tables])[0]

    def weight_grad(pg):
        torch.manual_seed(0)
        lookup = GroupedPooledEmbeddingsLookup(groups, pg=pg, sharding_type=sharding_type)
        kjt = random_kjt(["fw"], [9], 3, weighted=True, seed=7)
        kjt.weights().requires_grad_(True)
        lookup(kjt).sum().backward()
        return kjt.weights().grad

    plain, scaled = weight_grad(None), weight_grad(_FakeGroup())
    assert float(plain.abs().sum()) > 0
    torch.testing.assert_close(scaled, plain / factor)


class _RecordingKernel(torch.nn.Module):
    """A kernel accepting updates: records the KJT each ``update`` receives."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.seen = []

    def update(self, features):
        self.seen.append(features)


def test_grouped_embeddings_update_splits_by_update_enabled_group():
    from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsUpdate

    groups = group_tables([[table("a", 5, 8, ["fa"], pooling=PoolingType.NONE),
                            table("b", 5, 16, ["fb", "fc"], pooling=PoolingType.NONE)]])[0]
    lookup = GroupedEmbeddingsLookup(groups)
    assert len(GroupedEmbeddingsUpdate(lookup)._emb_modules) == 0  # nothing enables updates
    for g in groups:
        g.enable_embedding_update = True
    with pytest.raises(ValueError, match="has no update"):
        GroupedEmbeddingsUpdate(lookup)
    lookup._emb_modules = torch.nn.ModuleList([_RecordingKernel(g) for g in groups])
    upd = GroupedEmbeddingsUpdate(lookup)
    keys = [f for g in groups for f in g.feature_names()]
    kjt = KeyedJaggedTensor.from_lengths_sync(keys, torch.arange(3), torch.tensor([1, 0, 1, 1, 0, 0]))
    upd(kjt)
    assert [k.seen[0].keys() for k in upd._emb_modules] == [g.feature_names() for g in groups]
