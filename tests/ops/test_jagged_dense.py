import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.ops.cumsum import complete_cumsum
from recsys_lib.ops.jagged_dense import (
    jagged_to_padded_dense,
    jagged_to_padded_dense_fbgemm,
    jagged_to_padded_dense_masked,
    jagged_to_padded_dense_reference,
)


def _python_padded(lengths, values, width, pad):
    out, pos = [], 0
    for n in lengths:
        row = values[pos : pos + n][:width]
        out.append(row + [pad] * (width - len(row)))
        pos += n
    return out


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=8), st.integers(0, 6), st.sampled_from([0.0, -1.0]))
def test_padded_variants_1d(lengths, width, pad):
    values = torch.arange(sum(lengths), dtype=torch.float32) + 1
    lt = torch.tensor(lengths, dtype=torch.int64)
    offsets = complete_cumsum(lt)
    want = torch.tensor(_python_padded(lengths, values.tolist(), width, pad), dtype=torch.float32).view(len(lengths), width)
    for out in (
        jagged_to_padded_dense_reference(values, lt, width, pad),
        jagged_to_padded_dense_fbgemm(values, offsets, width, pad),
        jagged_to_padded_dense_masked(values, lt, width, pad),
        jagged_to_padded_dense(values, lt, offsets, width, pad),
    ):
        torch.testing.assert_close(out, want)


def test_padded_2d_values_and_grad():
    values = torch.arange(10.0).view(5, 2).requires_grad_()
    lt = torch.tensor([3, 0, 2])
    ref = jagged_to_padded_dense_reference(values, lt, 2)
    fast = jagged_to_padded_dense_masked(values, lt, 2)
    fb = jagged_to_padded_dense_fbgemm(values, complete_cumsum(lt), 2)
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(fb, ref)
    fast.sum().backward()
    # the third value of the first bag is truncated away: zero gradient
    assert values.grad[:, 0].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]


def test_padded_1d_dispatch_grad_and_index_dtypes():
    # the zero-padding 1-D path of the dispatcher: gradient flows to kept values only, any offsets/values int dtype
    for off_dtype in (torch.int32, torch.int64):
        values = torch.arange(1.0, 7.0).requires_grad_()
        lt = torch.tensor([4, 0, 2], dtype=off_dtype)
        out = jagged_to_padded_dense(values, lt, complete_cumsum(lt), 3, 0.0)
        torch.testing.assert_close(out, torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [5.0, 6.0, 0.0]]))
        (out * torch.arange(1.0, 10.0).view(3, 3)).sum().backward()
        assert values.grad.tolist() == [1.0, 2.0, 3.0, 0.0, 7.0, 8.0]
        ids = torch.tensor([10, 11, 12, 13, 14, 15], dtype=torch.int64)
        got = jagged_to_padded_dense(ids, lt, complete_cumsum(lt), 1, 0.0)
        assert got.dtype == torch.int64 and got.tolist() == [[10], [0], [14]]


def test_padded_large_input_pack_path_matches_reference_and_guards():
    from recsys_lib.ops.jagged_dense import _pack_min_rows, _packable

    g = torch.Generator().manual_seed(0)
    rows = _pack_min_rows() + 3
    lt = torch.randint(0, 7, (rows,), generator=g, dtype=torch.int32)
    for dtype in (torch.float32, torch.int32, torch.int64):
        values = torch.randint(-50, 50, (int(lt.sum()),), generator=g).to(dtype)
        want = jagged_to_padded_dense_reference(values, lt, 4)
        got = jagged_to_padded_dense(values, lt, None, 4, 0.0)
        assert got.dtype == dtype
        torch.testing.assert_close(got, want)
    values = torch.randn(int(lt.sum()), generator=g)
    assert _packable(values, lt, 4)
    assert not _packable(values, lt, 0)
    assert not _packable(values[:-1], lt, 4)  # lengths do not sum to the number of values
    neg = lt.clone()
    neg[0], neg[1] = -1, neg[1] + 1
    assert not _packable(values, neg, 4)  # negative length: never handed to pack_segments
    assert not _packable(values, lt[:10], 4)  # small: the checks are not worth it
    leaf = values.clone().requires_grad_()
    assert not _packable(leaf, lt, 4)
    out = jagged_to_padded_dense(leaf, lt, None, 2, 0.0)
    out.sum().backward()
    # gradient 1 for the first two values of every bag, 0 for truncated ones (pack_segments would leave garbage)
    col = torch.arange(leaf.numel()) - torch.repeat_interleave(complete_cumsum(lt.long())[:-1], lt.long())
    torch.testing.assert_close(leaf.grad, (col < 2).float())
    with torch.no_grad():
        assert _packable(leaf, lt, 4)
