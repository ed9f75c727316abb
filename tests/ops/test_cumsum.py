import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.ops.cumsum import (
    complete_cumsum,
    complete_cumsum_fbgemm,
    complete_cumsum_reference,
    lengths_from_offsets,
)


@settings(derandomize=True, max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 1000), max_size=30), st.sampled_from([torch.int32, torch.int64]))
def test_cumsum_variants(lengths, dtype):
    t = torch.tensor(lengths, dtype=dtype)
    want = [0]
    for x in lengths:
        want.append(want[-1] + x)
    for fn in (complete_cumsum_reference, complete_cumsum_fbgemm, complete_cumsum):
        out = fn(t)
        assert out.tolist() == want and out.dtype == dtype
    assert lengths_from_offsets(complete_cumsum(t)).tolist() == lengths


@settings(derandomize=True, max_examples=25, deadline=None)
@given(rows=st.integers(0, 5), cols=st.integers(0, 7), dtype=st.sampled_from([torch.int32, torch.int64]))
def test_complete_cumsum_rows_variants(rows, cols, dtype):
    from recsys_lib.ops.cumsum import _complete_cumsum_rows_fast, complete_cumsum_rows_reference

    g = torch.Generator().manual_seed(rows * 11 + cols)
    lengths = torch.randint(0, 9, (rows, cols), generator=g, dtype=dtype)
    expected = torch.cat([torch.zeros(rows, 1, dtype=torch.int64), lengths.long().cumsum(1)], dim=1)  # plain torch
    for fn in (complete_cumsum_rows_reference, _complete_cumsum_rows_fast):
        out = fn(lengths)
        assert out.dtype == dtype and out.shape == (rows, cols + 1)
        assert torch.equal(out.long(), expected)
