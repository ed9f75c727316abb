import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.ops.segment import segment_sum_csr, segment_sum_csr_fbgemm, segment_sum_csr_reference


@settings(derandomize=True, max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 4), min_size=1, max_size=8))
def test_segment_sums(seg_sizes):
    n = sum(seg_sizes)
    values = torch.arange(n, dtype=torch.float32) * 1.5
    csr = torch.tensor([0] + seg_sizes).cumsum(0)
    want = []
    pos = 0
    for s in seg_sizes:
        want.append(float(values[pos : pos + s].sum()))
        pos += s
    for fn in (segment_sum_csr_reference, segment_sum_csr_fbgemm, segment_sum_csr):
        torch.testing.assert_close(fn(csr, values), torch.tensor(want, dtype=torch.float32))
    ints = torch.arange(n, dtype=torch.int64)
    pos, want_int = 0, []
    for s in seg_sizes:
        want_int.append(sum(range(pos, pos + s)))
        pos += s
    assert segment_sum_csr(csr, ints).tolist() == want_int
