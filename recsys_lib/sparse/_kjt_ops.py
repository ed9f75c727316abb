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
from recsys_lib.sparse._jagged import JaggedTensor, trusted_jt


def stride_per_key_from_rank(stride_per_key_per_rank: List[List[int]]) -> List[int]:
    return [sum(s) for s in stride_per_key_per_rank]


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
    per_key: List[int] = _per_key_sums(lengths, num_keys, stride_per_key).tolist()
    return per_key


def jt_dict_from_parts(
    keys: List[str],
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: torch.Tensor,
    length_per_key: List[int],
    stride_per_key: Optional[List[int]],
    compute_offsets: bool,
) -> Dict[str, JaggedTensor]:
    """Per-key JTs as views of the KJT's tensors; offsets (rebased to 0) computed in one batched cumsum."""
    num_keys = len(keys)
    out: Dict[str, JaggedTensor] = {}
    if num_keys == 0:
        return out  # no keys: nothing to view (and lengths.view(0, -1) would be ambiguous)
    total = sum(length_per_key)
    if values.size(0) != total:  # values past the last bag (TorchRec accepts them) belong to no key
        values = values[:total]
        if weights is not None:
            weights = weights[:total]
    values_list = values.split_with_sizes(length_per_key)
    weights_list: Optional[List[torch.Tensor]] = None
    if weights is not None:
        weights_list = list(weights.split_with_sizes(length_per_key))
    offsets_list: Optional[List[torch.Tensor]] = None
    if stride_per_key is None:
        lengths_2d = lengths.view(num_keys, -1)
        lengths_list = list(lengths_2d.unbind(0))
        if compute_offsets:
            offsets_2d = torch.zeros(
                (num_keys, lengths_2d.size(1) + 1), dtype=lengths.dtype, device=lengths.device
            )
            torch.cumsum(lengths_2d, 1, out=offsets_2d[:, 1:])
            offsets_list = list(offsets_2d.unbind(0))
    else:
        lengths_list = list(lengths.view(-1).split_with_sizes(stride_per_key))
        if compute_offsets:
            offsets_list = [torch.cat([l.new_zeros(1), l.cumsum(0).to(l.dtype)]) for l in lengths_list]
    for i in range(num_keys):
        w: Optional[torch.Tensor] = None
        if weights_list is not None:
            w = weights_list[i]
        o: Optional[torch.Tensor] = None
        if offsets_list is not None:
            o = offsets_list[i]
        out[keys[i]] = trusted_jt(values_list[i], w, lengths_list[i], o)
    return out


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
