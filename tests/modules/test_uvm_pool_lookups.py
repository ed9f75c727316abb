"""UVM-caching pool lookups: CUDA only (a clear error elsewhere); the int64 <-> two int32 words packing is exact."""

import pytest
import torch

from recsys_lib.modules.object_pool_lookups import (
    UVMCachingFloatLookup,
    UVMCachingInt32Lookup,
    UVMCachingInt64Lookup,
)


@pytest.mark.parametrize("make", [
    lambda d: UVMCachingFloatLookup(pool_size=4, dim=8, dtype=torch.float, device=d),
    lambda d: UVMCachingInt32Lookup(pool_size=4, feature_max_lengths={"a": 2, "b": 3}, is_weighted=True, device=d),
    lambda d: UVMCachingInt64Lookup(pool_size=4, feature_max_lengths={"a": 2}, is_weighted=False, device=d),
])
def test_cpu_construction_names_cuda(make):
    with pytest.raises(ValueError, match="needs CUDA"):
        make(torch.device("cpu"))


def test_int64_words_round_trip():
    lookup = UVMCachingInt64Lookup.__new__(UVMCachingInt64Lookup)  # packing only: no storage needed
    values = torch.tensor([0, -1, -5, 2**31 - 1, 2**31 + 3, 2**40 + 7, -(2**62), 2**63 - 1, -(2**63)])
    words = lookup._words(values)
    assert words.dtype == torch.int32 and words.shape == (values.numel(), 2)
    assert torch.equal(words[:, 0].to(torch.int64), values >> 32)  # high word: arithmetic shift
    assert torch.equal(lookup._values(words), values)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="UVM caching needs CUDA")
@pytest.mark.gpu
def test_uvm_int64_pool_round_trip_on_cuda():
    from recsys_lib.sparse.jagged_tensor import JaggedTensor

    d = torch.device("cuda")
    lookup = UVMCachingInt64Lookup(pool_size=5, feature_max_lengths={"a": 2, "b": 2}, is_weighted=True, device=d)
    ids = torch.tensor([3, 1], device=d)
    values = JaggedTensor(values=torch.tensor([2**40, -3, 7, 9, 11], device=d),
                          lengths=torch.tensor([1, 2, 2, 0], device=d),
                          weights=torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0], device=d))
    lookup.update(ids, values)
    out = lookup.lookup(ids)
    assert torch.equal(out.values(), values.values()) and torch.equal(out.lengths(), values.lengths())
    torch.testing.assert_close(out.weights(), values.weights())
