"""Host helpers: RecycledBuffers hands a buffer out again only when no tensor views it; host_empty advises 2 MB
pages; the pooled output's column permutation built on them matches index_select and its gradient;
sort_in_place matches torch.sort."""

import copy
import pickle
import sys
import threading

import pytest
import torch

from recsys_lib.distributed._dist.column_permute import inverse_permutation, permute_columns
from recsys_lib.ops._host import sort_in_place
from recsys_lib.ops._host_buffers import RecycledBuffers, host_empty


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


def _thp_mode():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return f.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return "never"


def _anon_huge_kb(ptr):
    """AnonHugePages of the mapping holding address ``ptr`` (from /proc/self/smaps)."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(c in "0123456789abcdef-" for c in head):
                lo, hi = (int(x, 16) for x in head.split("-"))
                inside = lo <= ptr < hi
            elif inside and line.startswith("AnonHugePages:"):
                return int(line.split()[1])
    return 0


def test_host_empty_is_an_empty_tensor_and_large_ones_get_huge_pages():
    small = host_empty((3, 5), torch.int32)
    assert small.shape == (3, 5) and small.dtype == torch.int32 and small.is_contiguous()
    big = host_empty((16 * 2**20 // 4,), torch.float32)  # 16 MB: advised before the first write
    big.fill_(3.0)
    assert bool((big == 3.0).all())
    if sys.platform.startswith("linux") and _thp_mode() in ("madvise", "always"):
        assert _anon_huge_kb(big.data_ptr() + 8 * 2**20) >= 2048


@pytest.mark.parametrize("requires_grad", [True, False])
def test_permute_columns_matches_index_select_and_its_gradient(requires_grad):
    g = torch.Generator().manual_seed(0)
    permute = torch.randperm(12, generator=g)
    values = torch.randn(5, 12, generator=g)
    grad_out = torch.randn(5, 12, generator=g)
    ours_in = values.clone().requires_grad_(requires_grad)
    ref_in = values.clone().requires_grad_(requires_grad)
    ours = permute_columns(ours_in, permute, inverse_permutation(permute))
    ref = ref_in.index_select(1, permute)
    assert torch.equal(ours, ref)
    assert torch.equal(inverse_permutation(permute)[permute], torch.arange(12))
    if requires_grad:
        (ours * grad_out).sum().backward()
        (ref * grad_out).sum().backward()
        assert torch.equal(ours_in.grad, ref_in.grad)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_sort_in_place_matches_torch_sort(dtype):
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-(2**30), 2**30, (10_001,), generator=g, dtype=torch.int64).to(dtype)
    expected = torch.sort(x).values
    y = x.clone()
    assert sort_in_place(y) is y and torch.equal(y, expected)
    strided = x.clone()[::2]  # not contiguous: falls back to torch.sort, leaves the input alone
    before = strided.clone()
    assert torch.equal(sort_in_place(strided), torch.sort(before).values) and torch.equal(strided, before)


def test_without_torchs_storage_count_nothing_is_reused(monkeypatch):
    import recsys_lib.ops._host_buffers as hb

    monkeypatch.setattr(hb, "_STORAGE_USE_COUNT", None)
    pool = RecycledBuffers(slots=2)
    first = pool.empty((4,), torch.float32)
    ptr = first.data_ptr()
    first.fill_(7.0)
    second = pool.empty((4,), torch.float32)  # `first` alive: must not alias it
    assert second.data_ptr() != ptr and torch.equal(first, torch.full((4,), 7.0))
    assert pool._buffers == []
