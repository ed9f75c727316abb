"""Properties of the KJT restructuring ops against a plain-python model (per-key lists of bags), with hypothesis."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor, kjt_is_equal

SETTINGS = settings(derandomize=True, max_examples=50, deadline=None)


@st.composite
def kjts(draw, vbe=None):
    """(kjt, model) where model = {key: [bag lists]} and bags hold (id, weight) values."""
    f = draw(st.integers(1, 5))
    variable = draw(st.booleans()) if vbe is None else vbe
    b = draw(st.integers(0, 4))
    strides = [draw(st.integers(0, 4)) for _ in range(f)] if variable else [b] * f
    keys = [f"k{i}" for i in range(f)]
    lengths = [draw(st.integers(0, 3)) for _ in range(sum(strides))]
    weighted = draw(st.booleans())
    values = torch.arange(10, 10 + sum(lengths))
    weights = values.float() / 3 if weighted else None
    kjt = KeyedJaggedTensor(
        keys=keys,
        values=values,
        weights=weights,
        lengths=torch.tensor(lengths, dtype=torch.int32),
        stride_per_key_per_rank=[[s] for s in strides] if variable else None,
        stride=None if variable else b,
    )
    model, pos, li = {}, 0, 0
    for k, s in zip(keys, strides):
        bags = []
        for _ in range(s):
            n = lengths[li]
            bags.append(values[pos : pos + n].tolist())
            pos += n
            li += 1
        model[k] = bags
    return kjt, model


def _as_model(kjt):
    out = {}
    for k, jt in zip(kjt.keys(), [kjt[k] for k in kjt.keys()]):
        out.setdefault(k, [t.tolist() for t in jt.to_dense()])
    return out


def _check_weights_follow_values(kjt):
    w = kjt.weights_or_none()
    if w is not None:
        torch.testing.assert_close(w, kjt.values().float() / 3)


@SETTINGS
@given(kjts(), st.data())
def test_permute_matches_model(km, data):
    kjt, model = km
    f = len(kjt.keys())
    order = data.draw(st.lists(st.integers(0, f - 1), min_size=1, max_size=f + 2))
    p = kjt.permute(order)
    assert p.keys() == [kjt.keys()[i] for i in order]
    pos = 0
    for i in order:
        k = kjt.keys()[i]
        n = sum(len(bag) for bag in model[k])
        assert p.values()[pos : pos + n].tolist() == [x for bag in model[k] for x in bag]
        pos += n
    assert p.length_per_key() == [sum(len(b) for b in model[kjt.keys()[i]]) for i in order]
    assert p.stride_per_key() == [len(model[kjt.keys()[i]]) for i in order]
    _check_weights_follow_values(p)


@SETTINGS
@given(kjts(), st.data())
def test_split_then_concat_round_trips(km, data):
    kjt, model = km
    f = len(kjt.keys())
    cuts = sorted(data.draw(st.lists(st.integers(0, f), max_size=3)))
    bounds = [0] + cuts + [f]
    segments = [bounds[i + 1] - bounds[i] for i in range(len(bounds) - 1)]
    parts = kjt.split(segments)
    assert [len(p.keys()) for p in parts] == segments
    for p in parts:
        for k in p.keys():
            assert [t.tolist() for t in p[k].to_dense()] == model[k]
        _check_weights_follow_values(p)
    back = KeyedJaggedTensor.concat(parts)
    assert back.keys() == kjt.keys() and back.values().tolist() == kjt.values().tolist()
    assert back.lengths().tolist() == kjt.lengths().tolist()
    assert back.stride_per_key() == kjt.stride_per_key() or len(kjt.keys()) == 0


@SETTINGS
@given(kjts())
def test_to_dict_and_from_jt_dict(km):
    kjt, model = km
    d = kjt.to_dict()
    assert list(d) == kjt.keys()
    for k, jt in d.items():
        assert [t.tolist() for t in jt.to_dense()] == model[k]
        lengths = [len(b) for b in model[k]]
        assert jt.offsets().tolist() == [sum(lengths[:i]) for i in range(len(lengths) + 1)]
    back = KeyedJaggedTensor.from_jt_dict(d)
    assert back.values().tolist() == kjt.values().tolist() and back.lengths().tolist() == kjt.lengths().tolist()
    if len(set(kjt.stride_per_key())) == 1:
        assert kjt_is_equal(back, KeyedJaggedTensor(kjt.keys(), kjt.values(), kjt.weights_or_none(), kjt.lengths()))


@SETTINGS
@given(kjts())
def test_length_and_offset_per_key(km):
    kjt, model = km
    lpk = [sum(len(b) for b in model[k]) for k in kjt.keys()]
    assert kjt.length_per_key() == lpk
    assert kjt.offset_per_key() == [sum(lpk[:i]) for i in range(len(lpk) + 1)]
    assert kjt.offsets().tolist()[-1] == sum(lpk)
