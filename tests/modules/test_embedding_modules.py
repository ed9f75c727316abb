import pytest
import torch

from recsys_lib.modules.embedding_configs import DataType, EmbeddingBagConfig, EmbeddingConfig, PoolingType
from recsys_lib.modules.embedding_modules import (
    EmbeddingBagCollection,
    EmbeddingCollection,
    get_embedding_names_by_table,
    process_pooled_embeddings,
    reorder_inverse_indices,
)
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.modules._batches import make_kjt, pool, random_batch

# t0 reads f0, f1 (D=4, SUM); t1 reads f2 (D=6, MEAN); t2 reads f0 too (D=2) → "f0@t0", "f0@t2".
TABLES = [
    ("t0", 11, 4, ["f0", "f1"], PoolingType.SUM),
    ("t1", 7, 6, ["f2"], PoolingType.MEAN),
    ("t2", 5, 2, ["f0"], PoolingType.SUM),
]
BATCH = {  # B = 3; ids per feature 3, 4, 5 (never equal to B)
    "f0": [[1, 2], [], [4]],
    "f1": [[3], [3, 3], [0]],
    "f2": [[6, 5, 4], [], [1, 2]],
}


def _bag_configs(tables=TABLES):
    return [EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=n, feature_names=list(f), pooling=p)
            for n, r, d, f, p in tables]


def _reference(ebc, batch, weights=None):
    cols = []
    for name, _, _, feats, pooling in TABLES:
        w = ebc.embedding_bags[name].weight
        for f in feats:
            cols.append(pool(w, batch[f], "sum" if pooling == PoolingType.SUM else "mean",
                             None if weights is None else weights[f]))
    return torch.cat(cols, dim=1)


@pytest.mark.parametrize("keys", [["f0", "f1", "f2"], ["f2", "f1", "f0"], ["f1", "f2", "f0"]])
def test_ebc_matches_per_bag_reference(keys):
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(_bag_configs())
    kt = ebc(make_kjt(BATCH, keys))
    assert kt.keys() == ["f0@t0", "f1", "f2", "f0@t2"]
    assert kt.length_per_key() == [4, 4, 6, 2]
    torch.testing.assert_close(kt.values(), _reference(ebc, BATCH))
    torch.testing.assert_close(kt["f2"], _reference(ebc, BATCH)[:, 8:14])


def test_ebc_backward_matches_reference_gradients():
    torch.manual_seed(1)
    ebc = EmbeddingBagCollection(_bag_configs())
    ref_weights = {n: ebc.embedding_bags[n].weight.detach().clone().requires_grad_() for n, *_ in TABLES}
    grad_out = torch.randn(3, 16)
    (ebc(make_kjt(BATCH, ["f1", "f0", "f2"])).values() * grad_out).sum().backward()
    cols = []
    for name, _, _, feats, pooling in TABLES:
        for f in feats:
            cols.append(pool(ref_weights[name], BATCH[f], "sum" if pooling == PoolingType.SUM else "mean"))
    (torch.cat(cols, 1) * grad_out).sum().backward()
    for name in ref_weights:
        torch.testing.assert_close(ebc.embedding_bags[name].weight.grad, ref_weights[name].grad)


def test_weighted_ebc():
    torch.manual_seed(2)
    tables = [("t0", 11, 4, ["f0", "f1"], PoolingType.SUM), ("t1", 7, 6, ["f2"], PoolingType.SUM)]
    ebc = EmbeddingBagCollection(_bag_configs(tables), is_weighted=True)
    weights = {f: [[0.5 + i for i in range(len(bag))] for bag in bags] for f, bags in BATCH.items()}
    out = ebc(make_kjt(BATCH, ["f2", "f0", "f1"], weights)).values()
    ref = torch.cat([pool(ebc.embedding_bags[n].weight, BATCH[f], "sum", weights[f]) for n, _, _, fs, _ in tables
                     for f in fs], 1)
    torch.testing.assert_close(out, ref)
    kjt = make_kjt(BATCH, ["f2", "f0", "f1"], weights)
    kjt64 = KeyedJaggedTensor.from_lengths_sync(keys=kjt.keys(), values=kjt.values(), lengths=kjt.lengths(),
                                                weights=kjt.weights().double())
    torch.testing.assert_close(ebc(kjt64).values(), ref)  # float64 weights are cast to the table dtype
    assert ebc.is_weighted()
    with pytest.raises(ValueError, match="weights"):
        ebc(make_kjt(BATCH))


def test_random_batches_one_table_many_features():
    gen = torch.Generator().manual_seed(3)
    ebc = EmbeddingBagCollection(_bag_configs([("t", 50, 8, ["a", "b", "c"], PoolingType.SUM)]))
    for bs in [1, 5, 8]:
        batch = random_batch(gen, ["a", "b", "c"], bs, {"a": 50, "b": 50, "c": 50})
        got = ebc(make_kjt(batch)).values()
        w = ebc.embedding_bags["t"].weight
        torch.testing.assert_close(got, torch.cat([pool(w, batch[f]) for f in "abc"], 1))


def test_variable_batch_expands_with_inverse_indices():
    torch.manual_seed(4)
    ebc = EmbeddingBagCollection(_bag_configs(TABLES[:2]))
    # unique bags: f0 has 2, f1 3, f2 1; the full batch has 4 samples
    bags = {"f0": [[1, 2], [3]], "f1": [[], [4], [5, 6]], "f2": [[0, 1, 2]]}
    inverse = torch.tensor([[0, 1, 1, 0], [2, 1, 0, 0], [0, 0, 0, 0]])
    kjt = KeyedJaggedTensor(
        keys=["f0", "f1", "f2"], values=torch.tensor([1, 2, 3, 4, 5, 6, 0, 1, 2]),
        lengths=torch.tensor([2, 1, 0, 1, 2, 3]), stride_per_key_per_rank=[[2], [3], [1]],
        inverse_indices=(["f0", "f1", "f2"], inverse),
    )
    out = ebc(kjt).values()
    w0, w1 = ebc.embedding_bags["t0"].weight, ebc.embedding_bags["t1"].weight
    ref = torch.cat([pool(w0, bags["f0"])[inverse[0]], pool(w0, bags["f1"])[inverse[1]],
                     pool(w1, bags["f2"], "mean")[inverse[2]]], 1)
    assert out.shape == (4, 14)
    torch.testing.assert_close(out, ref)


def test_state_dict_keys_and_strict_load():
    ebc = EmbeddingBagCollection(_bag_configs())
    assert list(ebc.state_dict()) == ["embedding_bags.t0.weight", "embedding_bags.t1.weight", "embedding_bags.t2.weight"]
    ckpt = {f"embedding_bags.{n}.weight": torch.full((r, d), float(i)) for i, (n, r, d, _, _) in enumerate(TABLES)}
    ebc.load_state_dict(ckpt, strict=True)
    assert (ebc.embedding_bags["t1"].weight == 1.0).all()
    bag = ebc.embedding_bags["t1"]
    assert isinstance(bag, torch.nn.EmbeddingBag) and bag.mode == "mean" and bag.include_last_offset


def test_meta_device_then_materialise():
    ebc = EmbeddingBagCollection(_bag_configs(), device=torch.device("meta"))
    assert ebc.device.type == "meta" and ebc.embedding_bags["t0"].weight.is_meta
    ebc = ebc.to_empty(device="cpu")
    ebc._device = torch.device("cpu")
    ebc.reset_parameters()
    bound = (1 / 11) ** 0.5
    w = ebc.embedding_bags["t0"].weight
    assert w.abs().max() <= bound and w.std() > 0


def test_init_fn_and_bounds():
    cfg = EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="t", feature_names=["f"],
                             init_fn=lambda t: torch.nn.init.constant_(t, 0.25))
    ebc = EmbeddingBagCollection([cfg])
    assert (ebc.embedding_bags["t"].weight == 0.25).all()
    ebc.embedding_bags["t"].weight.data.zero_()
    ebc.reset_parameters()
    assert (ebc.embedding_bags["t"].weight == 0.25).all()


def test_fp16_table_outputs_float32():
    cfg = EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="t", feature_names=["f0"],
                             data_type=DataType.FP16)
    ebc = EmbeddingBagCollection([cfg])
    out = ebc(make_kjt({"f0": BATCH["f0"]})).values()
    assert ebc.embedding_bags["t"].weight.dtype == torch.float16 and out.dtype == torch.float32
    torch.testing.assert_close(out, pool(ebc.embedding_bags["t"].weight.float(), BATCH["f0"]), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    "tables,kwargs,exc,match",
    [
        ([("t", 5, 4, ["a"], PoolingType.SUM), ("t", 5, 4, ["b"], PoolingType.SUM)], {}, ValueError, "duplicate"),
        ([("", 5, 4, ["a"], PoolingType.SUM)], {}, ValueError, "empty name"),
        ([("t", 5, 4, ["a"], PoolingType.NONE)], {}, ValueError, "NONE"),
    ],
)
def test_ebc_bad_construction(tables, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        EmbeddingBagCollection(_bag_configs(tables), **kwargs)


def test_ebc_rejects_non_bag_configs_and_quantized_tables():
    with pytest.raises(TypeError, match="EmbeddingBagConfig"):
        EmbeddingBagCollection([EmbeddingConfig(num_embeddings=5, embedding_dim=4, name="t")])
    with pytest.raises(ValueError, match="INT8"):
        EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=5, embedding_dim=4, name="t",
                                                   data_type=DataType.INT8)])


def test_ebc_bad_input_keys():
    ebc = EmbeddingBagCollection(_bag_configs())
    # A key no table reads is ignored, as in TorchRec (one KJT feeds several collections).
    with_extra = ebc(make_kjt({**BATCH, "zz": [[1], [], []]}))
    torch.testing.assert_close(with_extra.values(), ebc(make_kjt(BATCH)).values())
    with pytest.raises(KeyError, match=r"\['f2'\].*missing"):  # a KeyError, as TorchRec's, naming the feature
        ebc(make_kjt({"f0": BATCH["f0"], "f1": BATCH["f1"]}))
    with pytest.raises(ValueError, match=r"\['f2'\].*missing"):
        ebc(make_kjt({"f0": BATCH["f0"], "f1": BATCH["f1"]}))
    mean_weighted = EmbeddingBagCollection(_bag_configs(TABLES[1:2]), is_weighted=True)
    with pytest.raises(ValueError, match="MEAN"):
        mean_weighted(make_kjt({"f2": BATCH["f2"]}, weights={"f2": [[1.0] * len(b) for b in BATCH["f2"]]}))


def test_table_without_feature_names_reads_its_own_name():
    ebc = EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=9, embedding_dim=4, name="f1")])
    out = ebc(make_kjt({"f1": BATCH["f1"]}))
    assert out.keys() == ["f1"]
    torch.testing.assert_close(out.values(), pool(ebc.embedding_bags["f1"].weight, BATCH["f1"]))


def test_ebc_is_scriptable():
    torch.manual_seed(5)
    ebc = EmbeddingBagCollection(_bag_configs())
    scripted = torch.jit.script(ebc)
    kjt = make_kjt(BATCH, ["f2", "f0", "f1"])
    torch.testing.assert_close(scripted(kjt).values(), ebc(kjt).values())


# ---- EmbeddingCollection -------------------------------------------------------------------------------------

EC_TABLES = [("t0", 11, ["f0", "f1"]), ("t1", 7, ["f2"]), ("t2", 5, ["f0"])]


def _ec(need_indices=False, device=None):
    return EmbeddingCollection(
        [EmbeddingConfig(num_embeddings=r, embedding_dim=4, name=n, feature_names=f) for n, r, f in EC_TABLES],
        need_indices=need_indices, device=device,
    )


@pytest.mark.parametrize("keys", [["f0", "f1", "f2"], ["f2", "f0", "f1"]])
def test_ec_matches_row_lookup(keys):
    torch.manual_seed(6)
    ec = _ec(need_indices=True)
    out = ec(make_kjt(BATCH, keys))
    assert sorted(out) == ["f0@t0", "f0@t2", "f1", "f2"]
    for name, table, feature in [("f0@t0", "t0", "f0"), ("f1", "t0", "f1"), ("f2", "t1", "f2"), ("f0@t2", "t2", "f0")]:
        ids = [i for bag in BATCH[feature] for i in bag]
        jt = out[name]
        torch.testing.assert_close(jt.values(), ec.embeddings[table].weight[torch.tensor(ids)])
        assert jt.lengths().tolist() == [len(b) for b in BATCH[feature]]
        assert jt.weights().tolist() == ids
    assert ec.embedding_names_by_table() == [["f0@t0", "f1"], ["f2"], ["f0@t2"]]
    assert ec.embedding_dim() == 4 and ec.need_indices()


def test_ec_backward_and_state_dict():
    torch.manual_seed(7)
    ec = _ec()
    assert list(ec.state_dict()) == ["embeddings.t0.weight", "embeddings.t1.weight", "embeddings.t2.weight"]
    out = ec(make_kjt(BATCH))
    out["f1"].values().sum().backward()
    expected = torch.zeros(11, 4)
    for i in [3, 3, 3, 0]:
        expected[i] += 1
    torch.testing.assert_close(ec.embeddings["t0"].weight.grad, expected)
    assert out["f1"].weights_or_none() is None


def test_ec_validation():
    with pytest.raises(ValueError, match="share embedding_dim"):
        EmbeddingCollection([EmbeddingConfig(num_embeddings=5, embedding_dim=4, name="a"),
                             EmbeddingConfig(num_embeddings=5, embedding_dim=8, name="b")])
    with pytest.raises(ValueError, match="duplicate"):
        EmbeddingCollection([EmbeddingConfig(num_embeddings=5, embedding_dim=4, name="a")] * 2)
    ec = _ec()
    with_extra = ec(make_kjt({**BATCH, "zz": [[1], [], []]}))  # extra keys ignored, as in TorchRec
    assert "zz" not in with_extra
    for name, jt in ec(make_kjt(BATCH)).items():
        torch.testing.assert_close(with_extra[name].values(), jt.values())
    assert _ec(device="meta").embeddings["t0"].weight.is_meta


def test_ec_is_scriptable():
    ec = _ec(need_indices=True)
    kjt = make_kjt(BATCH)
    scripted = torch.jit.script(ec)
    got, want = scripted(kjt), ec(kjt)
    for k in want:
        torch.testing.assert_close(got[k].values(), want[k].values())


# ---- helpers -------------------------------------------------------------------------------------------------


def test_embedding_names_by_table():
    tables = _bag_configs()
    assert get_embedding_names_by_table(tables) == [["f0@t0", "f1"], ["f2"], ["f0@t2"]]
    # as TorchRec: the helper reads feature_names as given; the collections default them to the table name
    cfg = EmbeddingBagConfig(num_embeddings=5, embedding_dim=4, name="t")
    assert get_embedding_names_by_table([cfg]) == [[]]
    EmbeddingBagCollection([cfg])
    assert cfg.feature_names == ["t"] and get_embedding_names_by_table([cfg]) == [["t"]]


def test_process_pooled_embeddings_and_reorder():
    a, b = torch.arange(4.0).view(2, 2), torch.arange(3.0).view(3, 1)
    inv = torch.tensor([[1, 0, 1], [2, 2, 0]])
    out = process_pooled_embeddings([a, b], inv)
    torch.testing.assert_close(out, torch.tensor([[2.0, 3.0, 2.0], [0.0, 1.0, 2.0], [2.0, 3.0, 0.0]]))
    reordered = reorder_inverse_indices((["x", "y"], inv), ["y", "x"])
    assert reordered.tolist() == [[2, 2, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="'z'"):
        reorder_inverse_indices((["x", "y"], inv), ["z"])
    with pytest.raises(ValueError, match="rows"):
        process_pooled_embeddings([a], inv)


def test_out_of_range_ids_raise():
    ebc = EmbeddingBagCollection(_bag_configs())
    bad = {**BATCH, "f2": [[6, 7], [], [1]]}  # t1 has 7 rows
    with pytest.raises(ValueError, match=r"table 't1': ids must be in \[0, 7\), got min 1 max 7"):
        ebc(make_kjt(bad))
    with pytest.raises(ValueError, match="table 't0'"):
        _ec()(make_kjt({**BATCH, "f1": [[-1], [], []]}))


def test_empty_batch_and_int32_ids():
    ebc = EmbeddingBagCollection(_bag_configs())
    empty = KeyedJaggedTensor.from_lengths_sync(keys=["f0", "f1", "f2"], values=torch.tensor([], dtype=torch.int64),
                                                lengths=torch.tensor([], dtype=torch.int32))
    assert ebc(empty).values().shape == (0, 16)
    kjt = make_kjt(BATCH)
    kjt32 = KeyedJaggedTensor.from_lengths_sync(keys=kjt.keys(), values=kjt.values().int(), lengths=kjt.lengths())
    torch.testing.assert_close(ebc(kjt32).values(), ebc(kjt).values())


def test_ebc_and_ec_fx_trace_then_script():
    from recsys_lib.fx import symbolic_trace

    torch.manual_seed(8)
    ebc, ec = EmbeddingBagCollection(_bag_configs()), _ec(need_indices=True)
    kjt = make_kjt(BATCH, ["f1", "f2", "f0"])
    traced = symbolic_trace(ebc)
    torch.testing.assert_close(traced(kjt).values(), ebc(kjt).values())
    torch.testing.assert_close(torch.jit.script(traced)(kjt).values(), ebc(kjt).values())
    traced_ec = symbolic_trace(ec)
    got, want = traced_ec(kjt), ec(kjt)
    for k in want:
        torch.testing.assert_close(got[k].values(), want[k].values())


def test_empty_collections_are_accepted_as_in_torchrec():
    # TorchRec builds an EBC/EC without tables; forward of the EBC gives (B, 0), the EC an empty dict.
    kjt = KeyedJaggedTensor.from_lengths_sync(["f"], torch.tensor([1, 2, 3]), torch.tensor([1, 2]))
    kt = EmbeddingBagCollection(tables=[])(kjt)
    assert kt.keys() == [] and tuple(kt.values().shape) == (2, 0)
    assert EmbeddingCollection(tables=[])(kjt) == {}


def test_meta_ebc_runs_forward_and_device_follows_parameters():
    ebc = EmbeddingBagCollection(_bag_configs(), device=torch.device("meta"))
    assert ebc.device.type == "meta"
    kjt = make_kjt(BATCH)
    for inp in (kjt, make_kjt(BATCH).to(torch.device("meta"))):  # a CPU KJT, and a meta KJT
        out = ebc(inp)
        assert out.values().is_meta
        assert tuple(out.values().shape) == tuple(EmbeddingBagCollection(_bag_configs())(kjt).values().shape)
    cpu = EmbeddingBagCollection(_bag_configs())
    assert cpu.to(torch.device("meta")).device.type == "meta"


def test_weights_on_unweighted_ebc_are_ignored_as_in_torchrec():
    ebc = EmbeddingBagCollection(_bag_configs())
    weights = {k: [[2.0] * len(b) for b in v] for k, v in BATCH.items()}
    torch.testing.assert_close(ebc(make_kjt(BATCH, weights=weights)).values(), ebc(make_kjt(BATCH)).values())
