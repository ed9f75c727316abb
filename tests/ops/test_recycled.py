"""RecycledBuffers: a buffer is handed out again only when no tensor views it any more."""

import copy
import pickle
import threading

import pytest
import torch

from recsys_lib.ops._recycled import RecycledBuffers


def test_a_held_result_is_never_handed_out_again():
    pool = RecycledBuffers(slots=2)
    first = pool.empty((4, 3), torch.float32)
    first.fill_(1.0)
    second = pool.empty((4, 3), torch.float32)  # `first` is alive: a new buffer
    assert second.data_ptr() != first.data_ptr()
    second.fill_(2.0)
    assert torch.equal(first, torch.ones(4, 3))
    ptr = first.data_ptr()
    del first
    third = pool.empty((4, 3), torch.float32)  # `first`'s buffer is free again
    assert third.data_ptr() == ptr


def test_views_and_slices_of_a_result_keep_its_buffer():
    pool = RecycledBuffers(slots=1)
    out = pool.empty((6, 2), torch.float32)
    ptr = out.data_ptr()
    column = out[:, 1]
    rows = out.view(3, 4)
    del out
    assert pool.empty((6, 2), torch.float32).data_ptr() != ptr  # `column` / `rows` still see the memory
    del column, rows
    # slots=1: the buffer made just now replaced the old one, which is freed, not reused
    again = pool.empty((6, 2), torch.float32)
    assert again.data_ptr() != ptr


def test_shape_dtype_and_inference_mode_must_match():
    pool = RecycledBuffers(slots=4)
    a = pool.empty((2, 2), torch.float32)
    ptr = a.data_ptr()
    del a
    assert pool.empty((2, 3), torch.float32).data_ptr() != ptr
    assert pool.empty((2, 2), torch.float16).data_ptr() != ptr
    with torch.inference_mode():
        b = pool.empty((2, 2), torch.float32)
        assert b.is_inference() and b.data_ptr() != ptr
        del b
    c = pool.empty((2, 2), torch.float32)
    assert not c.is_inference() and c.data_ptr() == ptr
    c.add_(1)  # an ordinary tensor outside inference mode: in-place writes allowed


def test_concurrent_callers_never_share_a_buffer():
    pool = RecycledBuffers(slots=2)
    errors = []
    start = threading.Barrier(4)

    def worker(k):
        start.wait()
        for _ in range(200):
            out = pool.empty((64,), torch.int64)
            out.fill_(k)
            if not bool((out == k).all()):
                errors.append(k)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_copies_and_pickles_start_empty():
    pool = RecycledBuffers(slots=3)
    held = pool.empty((2,), torch.float32)
    del held
    for other in (copy.deepcopy(pool), pickle.loads(pickle.dumps(pool))):
        assert other._slots == 3 and other._buffers == []
    with pytest.raises(ValueError, match="slots"):
        RecycledBuffers(0)
