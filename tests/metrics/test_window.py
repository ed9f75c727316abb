import pytest
import torch

from recsys_lib.metrics._window import WindowBuffer


def test_window_buffer_keeps_newest_batches_within_max_size():
    buf = WindowBuffer(max_size=10, max_buffer_count=3)
    evicted = [buf.push({"s": torch.tensor([float(i)])}, size) for i, size in enumerate([4, 4, 4, 20, 1, 1, 1, 1])]
    assert [len(e) for e in evicted] == [0, 0, 1, 2, 1, 0, 0, 1]  # last: the count cap (3) bites
    assert len(buf) == 3 and buf.used_size == 3
    state = buf.to_state()
    other = WindowBuffer(max_size=10)
    other.load_state(state, torch.device("cpu"))
    assert other.used_size == 3 and len(other) == 3
    with pytest.raises(ValueError, match="max_size"):
        WindowBuffer(max_size=0)
