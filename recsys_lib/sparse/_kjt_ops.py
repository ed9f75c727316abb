"""Pure helpers behind ``KeyedJaggedTensor``: tensors and host lists in, tensors and host lists out.

Layout (key-major; ``F`` keys, ``B`` batch, VBE: ``B_f`` per key)::

    keys    = [f1, f2]            b0      b1    b2
    lengths = [2, 0, 1, 1, 1, 2]  f1 [1, 2]   []    [3]
    values  = [1, 2, 3, 4, 5, 6, 7]  f2 [4]  [5]   [6, 7]
    # lengths: (sum_f B_f,)   values: (sum(L),)   offsets: (sum_f B_f + 1,)
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.ops.segment import segment_sum_csr_reference


def stride_per_key_from_rank(stride_per_key_per_rank: List[List[int]]) -> List[int]:
    return [sum(s) for s in stride_per_key_per_rank]


def infer_stride(
    num_keys: int, stride_per_key: Optional[List[int]], lengths: Optional[torch.Tensor], offsets: Optional[torch.Tensor]
) -> int:
    """The batch size ``B`` when not given: the largest per-key batch (VBE), else ``len(lengths) // F``."""
    if stride_per_key is not None:
        return max(stride_per_key) if len(stride_per_key) > 0 else 0
    if num_keys == 0:
        return 0
    if lengths is not None:
        return lengths.numel() // num_keys
    assert offsets is not None
    return (offsets.numel() - 1) // num_keys


def _per_key_sums(lengths: torch.Tensor, num_keys: int, stride_per_key: Optional[List[int]]) -> torch.Tensor:
    if stride_per_key is None:
        # int32 accumulation is exact here (a key's total is at most the number of values) and 2x faster
        dtype = torch.int32 if lengths.dtype == torch.int32 else torch.int64
        return lengths.view(num_keys, -1).sum(1, dtype=dtype)
    seg = torch.tensor([0] + stride_per_key, dtype=torch.int64, device=lengths.device).cumsum(0)
    return segment_sum_csr_reference(seg, lengths.view(-1))


def compute_length_per_key(
    lengths: torch.Tensor, num_keys: int, stride_per_key: Optional[List[int]]
) -> List[int]:
    """Number of values of each key (one host sync)."""
    if num_keys == 0:
        return []
    if lengths.numel() == 0:
        return [0] * num_keys
    # .long(): TorchScript's tolist() into List[int] needs int64 (lengths are often int32)
    per_key: List[int] = _per_key_sums(lengths, num_keys, stride_per_key).long().tolist()
    return per_key


def concat_optional(parts: List[Optional[torch.Tensor]], what: str) -> Optional[torch.Tensor]:
    present: List[torch.Tensor] = []
    for p in parts:
        if p is not None:
            present.append(p)
    if len(present) == 0:
        return None
    if len(present) != len(parts):
        raise ValueError(f"concat: either every KeyedJaggedTensor has {what} or none does")
    if len(present) == 1:
        return present[0]
    return torch.cat(present)


def check_segments(segments: List[int], num_keys: int) -> None:
    total = 0
    for s in segments:
        if s < 0:
            raise ValueError(f"split: segment sizes must be >= 0, got {segments}")
        total += s
    if total != num_keys:
        raise ValueError(f"split: segments {segments} sum to {total}, but the KeyedJaggedTensor has {num_keys} keys")


def check_permute(indices: List[int], num_keys: int) -> None:
    if len(indices) == 0:
        return
    lo = min(indices)
    hi = max(indices)
    if lo < 0 or hi >= num_keys:
        raise ValueError(
            f"permute: indices must lie in [0, {num_keys}) for a KeyedJaggedTensor with {num_keys} keys, got {indices}"
        )


def dist_splits(
    key_splits: List[int], stride_per_key: List[int], length_per_key: List[int], variable: bool, weighted: bool
) -> List[List[int]]:
    lengths_splits: List[int] = []
    values_splits: List[int] = []
    start = 0
    for n in key_splits:
        lengths_splits.append(sum(stride_per_key[start : start + n]))
        values_splits.append(sum(length_per_key[start : start + n]))
        start += n
    out = [lengths_splits, values_splits]
    if variable:
        out.append(list(key_splits))
    if weighted:
        out.append(values_splits)
    return out
