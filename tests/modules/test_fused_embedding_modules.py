"""Fused collections train to the same weights as the unfused ones + the equivalent torch optimizer."""

import pytest
import torch
from torch import nn

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.fused_embedding_modules import (
    FusedEmbeddingBagCollection,
    FusedEmbeddingCollection,
    convert_optimizer_type_and_kwargs,
    fuse_embedding_optimizer,
)
from recsys_lib.optim import optimizers as placeholder
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
from tests.modules._batches import make_kjt, random_batch

ROWS = {"f0": 20, "f1": 20, "f2": 9, "f3": 13}


def _bag_tables():
    # t1 (MEAN) sits between SUM tables: two TBE groups whose outputs must be put back in table order.
    return [
        EmbeddingBagConfig(num_embeddings=20, embedding_dim=4, name="t0", feature_names=["f0", "f1"]),
        EmbeddingBagConfig(num_embeddings=9, embedding_dim=8, name="t1", feature_names=["f2"],
                           pooling=PoolingType.MEAN),
        EmbeddingBagConfig(num_embeddings=13, embedding_dim=4, name="t2", feature_names=["f3"]),
    ]


OPTIMIZERS = [
    (torch.optim.SGD, {"lr": 0.5}),
    (torch.optim.Adagrad, {"lr": 0.3, "eps": 1e-8}),
    (RowWiseAdagrad, {"lr": 0.3, "eps": 1e-8}),
]


@pytest.mark.parametrize("opt_cls,kwargs", OPTIMIZERS, ids=lambda x: getattr(x, "__name__", ""))
def test_fused_ebc_trains_like_ebc_plus_optimizer(opt_cls, kwargs):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    ebc = EmbeddingBagCollection(_bag_tables())
    fused = FusedEmbeddingBagCollection(_bag_tables(), opt_cls, kwargs)
    fused.load_state_dict(ebc.state_dict())
    opt = opt_cls(ebc.parameters(), **kwargs)
    for step in range(4):
        batch = random_batch(gen, ["f3", "f1", "f2", "f0"], 5, ROWS)  # KJT keys not in table order
        kjt = make_kjt(batch)
        grad_out = torch.randn(5, 20, generator=gen)
        out_ref = ebc(kjt).values()
        out = fused(kjt)
        assert out.keys() == ["f0", "f1", "f2", "f3"]
        torch.testing.assert_close(out.values(), out_ref)
        opt.zero_grad()
        (out_ref * grad_out).sum().backward()
        opt.step()
        (out.values() * grad_out).sum().backward()
    for name, w in ebc.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], w, msg=f"{name} after 4 steps")


def test_fused_ebc_weighted_and_shared_feature():
    torch.manual_seed(1)
    tables = [EmbeddingBagConfig(num_embeddings=20, embedding_dim=4, name="a", feature_names=["f0", "f1"]),
              EmbeddingBagConfig(num_embeddings=20, embedding_dim=8, name="b", feature_names=["f0"])]
    ebc = EmbeddingBagCollection(tables, is_weighted=True)
    fused = FusedEmbeddingBagCollection(tables, torch.optim.SGD, {"lr": 0.1}, is_weighted=True)
    fused.load_state_dict(ebc.state_dict())
    batch = {"f0": [[1, 2, 2], [], [7]], "f1": [[3], [4, 5], []]}
    weights = {f: [[0.25 * (i + 1) for i in range(len(b))] for b in bags] for f, bags in batch.items()}
    kjt = make_kjt(batch, weights=weights)
    out_ref, out = ebc(kjt), fused(kjt)
    assert out.keys() == ["f0@a", "f1", "f0@b"]
    torch.testing.assert_close(out.values(), out_ref.values())
    opt = torch.optim.SGD(ebc.parameters(), lr=0.1)
    out_ref.values().pow(2).sum().backward()
    opt.step()
    out.values().pow(2).sum().backward()
    for name, w in ebc.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], w)


def test_fused_ebc_variable_batch():
    torch.manual_seed(2)
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    tables = _bag_tables()[:2]
    ebc = EmbeddingBagCollection(tables)
    fused = FusedEmbeddingBagCollection(tables, torch.optim.SGD, {"lr": 0.1})
    fused.load_state_dict(ebc.state_dict())
    kjt = KeyedJaggedTensor(
        keys=["f0", "f1", "f2"], values=torch.tensor([1, 2, 3, 4, 5, 6, 0, 1, 2]),
        lengths=torch.tensor([2, 1, 0, 1, 2, 3]), stride_per_key_per_rank=[[2], [3], [1]],
        inverse_indices=(["f0", "f1", "f2"], torch.tensor([[0, 1, 1, 0], [2, 1, 0, 0], [0, 0, 0, 0]])),
    )
    torch.testing.assert_close(fused(kjt).values(), ebc(kjt).values())


@pytest.mark.parametrize("opt_cls,kwargs", OPTIMIZERS, ids=lambda x: getattr(x, "__name__", ""))
def test_fused_ec_trains_like_ec_plus_optimizer(opt_cls, kwargs):
    torch.manual_seed(3)
    gen = torch.Generator().manual_seed(3)
    tables = [EmbeddingConfig(num_embeddings=20, embedding_dim=4, name="t0", feature_names=["f0", "f1"]),
              EmbeddingConfig(num_embeddings=9, embedding_dim=4, name="t1", feature_names=["f2"])]
    ec = EmbeddingCollection(tables, need_indices=True)
    fused = FusedEmbeddingCollection(tables, opt_cls, kwargs, need_indices=True)
    fused.load_state_dict(ec.state_dict())
    opt = opt_cls(ec.parameters(), **kwargs)
    for _ in range(3):
        kjt = make_kjt(random_batch(gen, ["f2", "f0", "f1"], 6, ROWS, max_len=5))
        ref, got = ec(kjt), fused(kjt)
        assert sorted(got) == ["f0", "f1", "f2"]
        loss_ref = 0.0
        loss = 0.0
        for k in ref:
            torch.testing.assert_close(got[k].values(), ref[k].values())
            assert got[k].lengths().tolist() == ref[k].lengths().tolist()
            assert got[k].weights().tolist() == ref[k].weights().tolist()
            scale = torch.randn(ref[k].values().shape, generator=gen)
            loss_ref = loss_ref + (ref[k].values() * scale).sum()
            loss = loss + (got[k].values() * scale).sum()
        opt.zero_grad()
        loss_ref.backward()
        opt.step()
        loss.backward()
    for name, w in ec.state_dict().items():
        torch.testing.assert_close(fused.state_dict()[name], w)


def test_state_dict_and_fused_optimizer_state():
    fused = FusedEmbeddingBagCollection(_bag_tables(), RowWiseAdagrad, {"lr": 0.1})
    assert list(fused.state_dict()) == ["embedding_bags.t0.weight", "embedding_bags.t1.weight",
                                        "embedding_bags.t2.weight"]
    assert [n for n, _ in fused.named_parameters()] == list(fused.state_dict())
    # TorchRec's unsharded fused layout: {"<table>.weight": {"<table>.weight.momentum_1": (R,)}}
    state = fused.fused_optimizer().state_dict()["state"]
    assert set(state) == {"t0.weight", "t1.weight", "t2.weight"}
    assert list(state["t1.weight"]) == ["t1.weight.momentum_1"]
    assert state["t1.weight"]["t1.weight.momentum_1"].shape == (9,)
    adagrad = FusedEmbeddingBagCollection(_bag_tables(), torch.optim.Adagrad, {"lr": 0.1})
    assert adagrad.fused_optimizer().state_dict()["state"]["t0.weight"]["t0.weight.momentum_1"].shape == (20, 4)
    sgd = FusedEmbeddingBagCollection(_bag_tables(), torch.optim.SGD, {"lr": 0.1})
    assert sgd.fused_optimizer().state_dict()["state"] == {}
    # weights are updated in backward: a dense optimizer must not see them
    assert list(in_backward_optimizer_filter(fused.named_parameters())) == []
    assert fused.optimizer_type() is RowWiseAdagrad and fused.optimizer_kwargs() == {"lr": 0.1}


def test_lr_change_reaches_the_kernel():
    tables = [EmbeddingBagConfig(num_embeddings=4, embedding_dim=4, name="t", feature_names=["f"],
                                 init_fn=lambda w: w.fill_(1.0))]
    fused = FusedEmbeddingBagCollection(tables, torch.optim.SGD, {"lr": 0.5})
    kjt = make_kjt({"f": [[0], [1]]})
    fused(kjt).values().sum().backward()
    assert fused.state_dict()["embedding_bags.t.weight"][0, 0].item() == pytest.approx(0.5)
    opt = fused.fused_optimizer()
    opt.param_groups[0]["lr"] = 0.25
    opt.step()
    fused(kjt).values().sum().backward()
    assert fused.state_dict()["embedding_bags.t.weight"][0, 0].item() == pytest.approx(0.25)


def test_fuse_embedding_optimizer_replaces_nested_collections():
    torch.manual_seed(4)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.sparse = nn.Sequential(EmbeddingBagCollection(_bag_tables()))
            self.dense = nn.Linear(3, 1)

    model = Model()
    before = model.state_dict()
    fused = fuse_embedding_optimizer(model, torch.optim.SGD, {"lr": 0.1}, device=torch.device("cpu"))
    assert isinstance(fused.sparse[0], FusedEmbeddingBagCollection)
    after = fused.state_dict()
    assert list(after) == list(before)
    for k in before:
        torch.testing.assert_close(after[k], before[k])
    single = fuse_embedding_optimizer(EmbeddingCollection([EmbeddingConfig(num_embeddings=5, embedding_dim=4,
                                                                           name="e")]),
                                      torch.optim.SGD, {"lr": 0.1}, device="cpu")
    assert isinstance(single, FusedEmbeddingCollection)


@pytest.mark.parametrize(
    "opt_cls,kwargs,match",
    [
        (torch.optim.Adam, {"lr": 0.1}, "Adam.*no CPU kernel"),
        (placeholder.LAMB, {"lr": 0.1}, "LAMB.*no CPU kernel"),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, "momentum"),
        (torch.optim.Adagrad, {"lr": 0.1, "lr_decay": 0.1}, "lr_decay"),
        (torch.optim.RMSprop, {"lr": 0.1}, "RMSprop"),
        (torch.optim.SGD, {"lr": 0.1, "bogus": 1}, "bogus"),
    ],
)
def test_unsupported_optimizers_raise(opt_cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        FusedEmbeddingBagCollection(_bag_tables(), opt_cls, kwargs)


def test_bad_tables_raise():
    with pytest.raises(ValueError, match="multiple of 4"):
        FusedEmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=5, embedding_dim=6, name="t")],
                                    torch.optim.SGD, {"lr": 0.1})
    with pytest.raises(ValueError, match="share embedding_dim"):
        FusedEmbeddingCollection([EmbeddingConfig(num_embeddings=5, embedding_dim=4, name="a"),
                                  EmbeddingConfig(num_embeddings=5, embedding_dim=8, name="b")],
                                 torch.optim.SGD, {"lr": 0.1})
    fused = FusedEmbeddingBagCollection(_bag_tables(), torch.optim.SGD, {"lr": 0.1})
    with pytest.raises(ValueError, match="'f2'.*missing"):
        fused(make_kjt({"f0": [[1]], "f1": [[1]], "f3": [[2]]}))


def test_convert_optimizer_type_and_kwargs():
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    opt, kw = convert_optimizer_type_and_kwargs(torch.optim.Adagrad, {"lr": 0.2, "eps": 1e-6,
                                                                       "initial_accumulator_value": 0.0})
    assert opt == EmbOptimType.EXACT_ADAGRAD and kw == {"learning_rate": 0.2, "eps": 1e-6}
    opt, kw = convert_optimizer_type_and_kwargs(torch.optim.SGD, {"lr": 0.2, "weight_decay": 0.01})
    assert opt == EmbOptimType.EXACT_SGD and kw["weight_decay"] == 0.01 and "weight_decay_mode" in kw


def test_out_of_range_ids_raise_instead_of_reading_row_zero():
    fused = FusedEmbeddingBagCollection(_bag_tables(), torch.optim.SGD, {"lr": 0.1})
    with pytest.raises(ValueError, match=r"table 't2': ids must be in \[0, 13\)"):
        fused(make_kjt({"f0": [[1]], "f1": [[1]], "f2": [[2]], "f3": [[13]]}))


def test_fused_optimizer_checkpoint_round_trip():
    torch.manual_seed(5)
    gen = torch.Generator().manual_seed(5)
    a = FusedEmbeddingBagCollection(_bag_tables(), RowWiseAdagrad, {"lr": 0.2})
    batches = [make_kjt(random_batch(gen, ["f0", "f1", "f2", "f3"], 4, ROWS)) for _ in range(4)]
    for kjt in batches[:2]:
        a(kjt).values().sum().backward()
    b = FusedEmbeddingBagCollection(_bag_tables(), RowWiseAdagrad, {"lr": 0.2})
    b.load_state_dict(a.state_dict())
    b.fused_optimizer().load_state_dict(a.fused_optimizer().state_dict())
    state = b.fused_optimizer().state_dict()["state"]["t0.weight"]["t0.weight.momentum_1"]
    assert state.abs().sum() > 0  # the accumulator was really loaded (it starts at zero)
    for kjt in batches[2:]:
        a(kjt).values().sum().backward()
        b(kjt).values().sum().backward()
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)


def test_fused_ec_variable_batch_matches_ec():
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    tables = [EmbeddingConfig(num_embeddings=9, embedding_dim=4, name="t0", feature_names=["f0", "f1"])]
    ec = EmbeddingCollection(tables)
    fused = FusedEmbeddingCollection(tables, torch.optim.SGD, {"lr": 0.1})
    fused.load_state_dict(ec.state_dict())
    kjt = KeyedJaggedTensor(keys=["f0", "f1"], values=torch.tensor([1, 2, 3, 4, 5, 6]),
                            lengths=torch.tensor([2, 1, 0, 1, 2]), stride_per_key_per_rank=[[2], [3]])
    ref, got = ec(kjt), fused(kjt)
    for k in ref:
        torch.testing.assert_close(got[k].values(), ref[k].values())
        assert got[k].lengths().tolist() == ref[k].lengths().tolist()


def test_fused_module_refuses_to_move():
    fused = FusedEmbeddingBagCollection(_bag_tables(), torch.optim.SGD, {"lr": 0.1})
    assert fused.to("cpu") is fused
    with pytest.raises(ValueError, match="cannot be moved or cast"):
        fused.to(torch.float64)
    with pytest.raises(ValueError, match="cannot be moved or cast"):
        fused.to("meta")
