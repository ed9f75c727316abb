import pytest
import torch

from recsys_lib.metrics._window import WindowBuffer


def test_window_buffer_keeps_newest_batches_within_max_size():
    buf = WindowBuffer(max_size=10, max_buffer_count=3)
    evicted = [buf.push({"s": torch.tensor([float(i)])}, size) for i, size in enumerate([4, 4, 4, 20, 1, 1, 1, 1])]
    assert [len(e) for e in evicted] == [0, 0, 1, 2, 1, 0, 0, 1]  # last: the count cap (3) bites
    assert len(buf) == 3 and buf.used_size == 3
    state = buf.to_state()
    other = WindowBuffer(max_size=10, max_buffer_count=1000)
    other.load_state(state, torch.device("cpu"))
    assert other.used_size == 3 and len(other) == 3
    with pytest.raises(ValueError, match="max_size"):
        WindowBuffer(max_size=0, max_buffer_count=1000)


def test_aggregate_state_matches_a_plain_sliding_sum():
    # Reference: keep (size, value) pairs by hand with the same rule (count cap first, then the size cap).
    buf = WindowBuffer(max_size=10, max_buffer_count=3)
    window = torch.zeros(2, dtype=torch.double)
    kept = []
    for i, size in enumerate([4, 4, 4, 3, 1, 1, 1, 12]):
        cur = torch.tensor([float(i + 1), 10.0 * (i + 1)], dtype=torch.double)
        buf.aggregate_state(window, cur, size)
        if len(kept) == 3:
            kept.pop(0)
        kept.append((size, cur))
        while sum(s for s, _ in kept) > 10:
            kept.pop(0)
        want = sum((v for _, v in kept), torch.zeros(2, dtype=torch.double))
        torch.testing.assert_close(window, want)
        assert len(buf.buffers) == len(kept)
        for got, (_, v) in zip(buf.buffers, kept):
            torch.testing.assert_close(got, v)
    assert len(buf.buffers) == 0  # a 12-example batch exceeds max_size on its own and drops out too
