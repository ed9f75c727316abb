"""Hypothesis: random valid jagged batches through JT/KJT/KT ops and EBC/EC equal a plain-torch reference;
random corruptions raise a clear error naming what is wrong.

Batches cover empty key lists, zero-length bags, variable batch per key (VBE), weights, values past the last
bag and offsets that do not start at 0 (both accepted by TorchRec).
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig, PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor

SETTINGS = settings(derandomize=True, max_examples=40, deadline=None)
ROWS = 7


@st.composite
def batches(draw, allow_vbe=True, min_keys=0):
    """(kjt, model): model = {key: list of bags}, a bag = list of (id, weight)."""
    f = draw(st.integers(min_keys, 4))
    vbe = allow_vbe and f > 0 and draw(st.booleans())
    b = draw(st.integers(0, 3))
    strides = [draw(st.integers(0, 3)) for _ in range(f)] if vbe else [b] * f
    lengths = [draw(st.integers(0, 3)) for _ in range(sum(strides))]
    n = sum(lengths)
    lead = draw(st.integers(0, 2))   # values before offsets[0] (offsets given, not starting at 0)
    trail = draw(st.integers(0, 2))  # values past the last bag
    ids = torch.tensor([draw(st.integers(0, ROWS - 1)) for _ in range(lead + n + trail)], dtype=torch.int64)
    weighted = draw(st.booleans())
    weights = torch.rand(lead + n + trail, generator=torch.Generator().manual_seed(n)) if weighted else None
    use_offsets = draw(st.booleans())
    lengths_t = torch.tensor(lengths, dtype=torch.int32)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lengths_t, 0)]) + lead
    keys = [f"k{i}" for i in range(f)]
    kwargs = dict(stride_per_key_per_rank=[[s] for s in strides] if vbe else None, stride=None if vbe else b)
    if use_offsets:
        kjt = KeyedJaggedTensor(keys, ids, weights=weights, offsets=offsets, **kwargs)
        base = lead
    else:
        kjt = KeyedJaggedTensor(keys, ids[lead:], weights=None if weights is None else weights[lead:],
                                lengths=lengths_t, **kwargs)
        base = 0 if use_offsets else 0
    src_ids = ids if use_offsets else ids[lead:]
    src_w = weights if (use_offsets or weights is None) else weights[lead:]
    model, pos, li = {}, base, 0
    for k, s in zip(keys, strides):
        bags = []
        for _ in range(s):
            m = lengths[li]
            bags.append([(int(src_ids[pos + j]), None if src_w is None else float(src_w[pos + j])) for j in range(m)])
            pos += m
            li += 1
        model[k] = bags
    return kjt, model


def _bags(jt):
    w = jt.to_dense_weights()
    return [[(int(v), None if w is None else float(w[i][j])) for j, v in enumerate(bag.tolist())]
            for i, bag in enumerate(jt.to_dense())]


def _assert_bags_close(got, want):
    assert [[i for i, _ in bag] for bag in got] == [[i for i, _ in bag] for bag in want]
    for gb, wb in zip(got, want):
        for (_, gw), (_, ww) in zip(gb, wb):
            assert (gw is None) == (ww is None) and (gw is None or abs(gw - ww) < 1e-6)


@SETTINGS
@given(batches())
def test_kjt_views_match_model(km):
    kjt, model = km
    assert kjt.keys() == list(model)
    assert kjt.length_per_key() == [sum(len(b) for b in bags) for bags in model.values()]
    d = kjt.to_dict()
    for k, bags in model.items():
        _assert_bags_close(_bags(d[k]), bags)
        _assert_bags_close(_bags(kjt[k]), bags)


@SETTINGS
@given(batches(), st.data())
def test_permute_split_concat_match_model(km, data):
    kjt, model = km
    keys = list(model)
    if keys:
        order = data.draw(st.lists(st.integers(0, len(keys) - 1), max_size=6))
        p = kjt.permute(order)
        assert p.keys() == [keys[i] for i in order]
        for pos, i in enumerate(order):
            _assert_bags_close(_bags(p.to_dict()[keys[i]] if keys.count(keys[i]) == 1 else p[keys[i]]),
                               model[keys[i]])
    cut = data.draw(st.integers(0, len(keys)))
    parts = kjt.split([cut, len(keys) - cut])
    for part in parts:
        for k in part.keys():
            _assert_bags_close(_bags(part[k]), model[k])
    if len(parts[0].keys()) and len(parts[1].keys()):
        back = KeyedJaggedTensor.concat(parts)
        for k in keys:
            _assert_bags_close(_bags(back[k]), model[k])


@SETTINGS
@given(st.lists(st.integers(0, 3), max_size=6), st.integers(0, 2), st.integers(0, 2))
def test_jagged_tensor_offsets_are_indices(lengths, lead, trail):
    n = sum(lengths)
    values = torch.arange(lead + n + trail) * 10
    offsets = torch.tensor([0] + lengths).cumsum(0) + lead
    jt = JaggedTensor(values, offsets=offsets)
    want = [values[offsets[i]:offsets[i + 1]].tolist() for i in range(len(lengths))]
    assert [t.tolist() for t in jt.to_dense()] == want
    assert jt.lengths().tolist() == lengths
    padded = jt.to_padded_dense(desired_length=2, padding_value=-1.0)
    for i, bag in enumerate(want):
        row = (bag + [-1, -1])[:2]
        assert padded[i].tolist() == row


@SETTINGS
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.integers(1, 3), st.data())
def test_keyed_tensor_regroup_matches_cat(dims, batch, data):
    keys = [f"k{i}" for i in range(len(dims))]
    tensors = [torch.randn(batch, d) for d in dims]
    kt = KeyedTensor.from_tensor_list(keys, tensors)
    groups = data.draw(st.lists(st.lists(st.sampled_from(keys), min_size=1, max_size=3), min_size=1, max_size=3))
    out = KeyedTensor.regroup([kt], groups)
    for g, o in zip(groups, out):
        torch.testing.assert_close(o, torch.cat([tensors[keys.index(k)] for k in g], dim=1))
    for k, t in zip(keys, tensors):
        torch.testing.assert_close(kt[k], t)


def _tables(n_keys, pooled):
    cfg = EmbeddingBagConfig if pooled else EmbeddingConfig
    extra = dict(pooling=PoolingType.SUM) if pooled else {}
    # table 0 reads k0 (and k1 when present); table 1 reads k1 again: a shared feature
    tables = [cfg(num_embeddings=ROWS, embedding_dim=4, name="t0", feature_names=["k0"] + (["k1"] if n_keys > 1 else []), **extra)]
    if n_keys > 1:
        tables.append(cfg(num_embeddings=ROWS, embedding_dim=4, name="t1", feature_names=["k1"], **extra))
    return tables


@SETTINGS
@given(batches(allow_vbe=False, min_keys=1), st.booleans())
def test_ebc_and_ec_match_plain_torch(km, weighted_ebc):
    kjt, model = km
    keys = list(model)
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(_tables(len(keys), True), is_weighted=weighted_ebc and kjt.weights_or_none() is not None)
    out = ebc(kjt)
    b = kjt.stride()
    for t in ebc.embedding_bag_configs():
        w = ebc.embedding_bags[t.name].weight.detach()
        for f in t.feature_names:
            name = f if sum(f in x.feature_names for x in ebc.embedding_bag_configs()) == 1 else f + "@" + t.name
            want = torch.stack([
                sum((w[i] * (wt if ebc.is_weighted() else 1.0) for i, wt in bag), torch.zeros(4)) for bag in model[f]
            ]) if b else torch.zeros(0, 4)
            torch.testing.assert_close(out[name], want)
    ec = EmbeddingCollection(_tables(len(keys), False))
    seq = ec(kjt)
    for t in ec.embedding_configs():
        w = ec.embeddings[t.name].weight.detach()
        for f in t.feature_names:
            name = f if sum(f in x.feature_names for x in ec.embedding_configs()) == 1 else f + "@" + t.name
            ids = [i for bag in model[f] for i, _ in bag]
            torch.testing.assert_close(seq[name].values(), w[torch.tensor(ids, dtype=torch.int64)] if ids
                                       else torch.zeros(0, 4))
            assert seq[name].lengths().tolist() == [len(bag) for bag in model[f]]


CORRUPTIONS = [
    ("negative length", lambda l, o, v: (l.clone().index_fill_(0, torch.tensor([0]), -1), None, v),
     r"lengths must be >= 0, got lengths\[0\]=-1 at key 'k0' \(batch index 0\)"),
    ("lengths past values", lambda l, o, v: (l, None, v[:-1]), r"needs values up to index \d+ but there are only"),
    ("non-monotone offsets", lambda l, o, v: (None, torch.cat([o[:1], o[:1] + 5, o[1:]])[: o.numel()], v),
     r"offsets must be non-decreasing|needs values up to index"),
    ("lengths/offsets disagree", lambda l, o, v: (l, o.clone().index_fill_(0, torch.tensor([1]), int(o[1]) + 1), v),
     r"disagree at key 'k0' \(batch index [01]\)"),
]


@SETTINGS
@given(st.lists(st.integers(1, 3), min_size=2, max_size=6), st.sampled_from(CORRUPTIONS))
def test_corruptions_raise_a_clear_error(lengths, corruption):
    _, corrupt, pattern = corruption
    l = torch.tensor(lengths if len(lengths) % 2 == 0 else lengths + [1])
    o = torch.cat([torch.zeros(1, dtype=torch.int64), l.cumsum(0)])
    v = torch.arange(int(l.sum()))
    cl, co, cv = corrupt(l, o, v)
    with pytest.raises(ValueError, match=pattern):
        KeyedJaggedTensor(["k0", "k1"], cv, lengths=cl, offsets=co).sync()
