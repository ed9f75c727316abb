"""The per-batch checks of ``length_per_key`` on their fast host paths (NumPy views of CPU lengths, issue 19).

Each case compares against plain-torch per-key sums, or asserts the same named error the general path gives, for
every branch: small int32 (one unsigned pass), large int32 (sign pass + int32 sums), int64, strided lengths,
VBE strides, offsets. Lengths are chosen so no per-key total equals the batch size.
"""

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _reference_lpk(lengths: torch.Tensor, num_keys: int):
    return [int(x) for x in lengths.reshape(num_keys, -1).to(torch.int64).sum(1)]


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("batch", [7, 7000])  # 21 lengths: one unsigned pass; 21000 (> 16384): sign pass + sums
def test_length_per_key_matches_plain_torch(dtype, batch):
    g = torch.Generator().manual_seed(batch)
    keys = ["a", "b", "c"]
    lengths = torch.randint(0, 9, (3 * batch,), generator=g).to(dtype)
    values = torch.arange(int(lengths.sum()) + 5)  # trailing values are accepted
    kjt = KeyedJaggedTensor(keys, values, lengths=lengths)
    assert kjt.length_per_key() == _reference_lpk(lengths, 3)
    assert kjt.offset_per_key()[-1] == int(lengths.sum())


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("batch", [5, 7000])  # 4 * 7000 = 28000 lengths: the two-pass branch
def test_negative_length_is_named_on_every_branch(dtype, batch):
    lengths = torch.full((4 * batch,), 2, dtype=dtype)
    lengths[2 * batch + 3] = -1
    lengths[2 * batch + 4] = 3  # the per-key total stays plausible: only the sign test can catch it
    values = torch.arange(int(lengths.sum()))
    kjt = KeyedJaggedTensor(["a", "b", "c", "d"], values, lengths=lengths)
    with pytest.raises(ValueError, match=r"lengths must be >= 0, got lengths\[\d+\]=-1 at key 'c' \(batch index 3\)"):
        kjt.length_per_key()


@pytest.mark.parametrize("batch", [2, 9000])
def test_int32_sums_that_would_wrap_are_rejected(batch):
    # two huge lengths sum to 2**32 - 2 + ... : a wrapping int32 accumulator would report a small total
    lengths = torch.zeros(2 * batch, dtype=torch.int32)
    lengths[0] = 2**31 - 1
    lengths[1] = 2**31 - 1
    lengths[2] = 4
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(10), lengths=lengths)
    with pytest.raises(ValueError, match="key 'a' needs values up to index"):
        kjt.length_per_key()


def test_lengths_past_values_named_on_large_batch():
    lengths = torch.ones(2 * 10000, dtype=torch.int32)
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(15000), lengths=lengths)
    with pytest.raises(ValueError, match="key 'b' needs values up to index 20000 but there are only 15000 values"):
        kjt.length_per_key()


def test_strided_lengths_and_vbe_and_offsets_paths():
    base = torch.tensor([1, 0, 2, 3, 1, 4, 0, 2], dtype=torch.int32)
    strided = torch.stack([base, base]).t().reshape(-1)[::2]  # non-contiguous view equal to base
    assert not strided.is_contiguous()
    values = torch.arange(13)
    assert KeyedJaggedTensor(["a", "b"], values, lengths=strided).length_per_key() == [6, 7]
    vbe = KeyedJaggedTensor(["a", "b"], values, lengths=base, stride_per_key_per_rank=[[3], [5]])
    assert vbe.length_per_key() == [3, 10]
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), base.cumsum(0)]) + 2  # starts at 2: re-based
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(15), offsets=offsets)
    assert kjt.length_per_key() == [6, 7] and kjt.values().tolist() == list(range(2, 15))


def test_reading_lengths_leaves_storage_resizable():
    lengths = torch.tensor([1, 2, 0, 1], dtype=torch.int32)
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(4), lengths=lengths)
    assert kjt.length_per_key() == [3, 1]
    lengths.resize_(100)  # Tensor.numpy() would have pinned the storage; the checks must not
    assert lengths.numel() == 100


def test_int64_sums_that_would_wrap_are_rejected():
    lengths = torch.tensor([2**62, 2**62, 2**62, 2**62, 0, 1], dtype=torch.int64)  # int64 total wraps to 1
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(10), lengths=lengths)
    with pytest.raises(ValueError, match="key 'a' needs values up to index"):
        kjt.length_per_key()
