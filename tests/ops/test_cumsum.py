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
