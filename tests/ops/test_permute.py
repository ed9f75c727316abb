"""Segment permutation: reference vs FBGEMM vs the cat-of-views fast path, on random jagged batches."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.ops.permute import (
    permute_1d_segments_fbgemm,
    permute_1d_segments_reference,
    permute_2d_sparse_data_fbgemm,
    permute_2d_sparse_data_reference,
    permute_rows_by_sizes,
    permute_segments,
    permute_segments_cat,
    permute_segments_fbgemm,
)
from tests.ops._strategies import jagged_2d

SETTINGS = settings(derandomize=True, max_examples=60, deadline=None)


def _python_permute(lengths, values, weights, order):
    # Independent oracle: split into python lists row by row.
    rows, pos = [], 0
    for r in range(lengths.size(0)):
        n = int(lengths[r].sum())
        rows.append((lengths[r].tolist(), values[pos : pos + n].tolist(), None if weights is None else weights[pos : pos + n].tolist()))
        pos += n
    out_l = [x for i in order for x in rows[i][0]]
    out_v = [x for i in order for x in rows[i][1]]
    out_w = None if weights is None else [x for i in order for x in rows[i][2]]
    return out_l, out_v, out_w


@st.composite
def case(draw):
    lengths, values, weights = draw(jagged_2d())
    f = lengths.size(0)
    order = draw(st.lists(st.integers(0, f - 1), min_size=1, max_size=2 * f))
    return lengths, values, weights, order


@SETTINGS
@given(case())
def test_2d_variants_agree_with_python(c):
    lengths, values, weights, order = c
    want_l, want_v, want_w = _python_permute(lengths, values, weights, order)
    order_t = torch.tensor(order)
    row_sizes = lengths.sum(1).tolist()
    variants = [
        permute_2d_sparse_data_reference(order_t, lengths, values, weights),
        permute_2d_sparse_data_fbgemm(order_t, lengths, values, weights),
        permute_rows_by_sizes(order, [lengths.size(1)] * lengths.size(0), row_sizes, lengths.view(-1), values, weights),
    ]
    for l, v, w in variants:
        assert l.reshape(-1).tolist() == want_l
        assert v.tolist() == want_v
        if want_w is None:
            assert w is None
        else:
            torch.testing.assert_close(w, torch.tensor(want_w))


@SETTINGS
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.randoms(use_true_random=False))
def test_1d_segments_reference_vs_fbgemm(seg_lengths, rnd):
    order = list(range(len(seg_lengths)))
    rnd.shuffle(order)
    seg = torch.tensor(seg_lengths, dtype=torch.int32)
    values = torch.arange(sum(seg_lengths))
    weights = values.float() * 0.5
    ref = permute_1d_segments_reference(torch.tensor(order), seg, values, weights)
    fb = permute_1d_segments_fbgemm(torch.tensor(order), seg, values, weights)
    for a, b in zip(ref, fb):
        assert torch.equal(a, b)
    starts = [sum(seg_lengths[:i]) for i in range(len(seg_lengths))]
    assert ref[1].tolist() == [starts[i] + j for i in order for j in range(seg_lengths[i])]


def test_weights_gradient_flows_through_fast_path():
    w = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    _, _, out_w = permute_rows_by_sizes([1, 0], [1, 1], [2, 1], torch.tensor([2, 1]), torch.arange(3), w)
    (out_w * torch.tensor([10.0, 20.0, 30.0])).sum().backward()
    assert w.grad.tolist() == [20.0, 30.0, 10.0]


@SETTINGS
@given(st.lists(st.integers(0, 6), min_size=1, max_size=6), st.data())
def test_permute_segments_variants(sizes, data):
    order = data.draw(st.lists(st.integers(0, len(sizes) - 1), min_size=1, max_size=8))
    values = torch.arange(sum(sizes))
    weights = values.float() * 2
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    want = [starts[i] + j for i in order for j in range(sizes[i])]
    order_t = torch.tensor(order, dtype=torch.int32)
    for fn in (permute_segments_cat, permute_segments_fbgemm, permute_segments):
        v, w = fn(order, order_t, sizes, values, weights)
        assert v.tolist() == want
        assert w.tolist() == [2.0 * x for x in want]


def test_weights_that_need_grad_take_the_differentiable_path():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    _, out_w = permute_segments([1, 0, 1], torch.tensor([1, 0, 1], dtype=torch.int32), [1, 3], torch.arange(4), w)
    (out_w * torch.arange(1.0, 8.0)).sum().backward()
    # out = [w1 w2 w3 | w0 | w1 w2 w3] weighted by 1..7 -> grads w0: 4, w1: 1+5, w2: 2+6, w3: 3+7
    assert w.grad.tolist() == [4.0, 6.0, 8.0, 10.0]
