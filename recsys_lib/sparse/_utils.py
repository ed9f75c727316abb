"""Small host-side helpers shared by the jagged types (TorchScript-safe)."""

import itertools
from typing import Dict, List, Optional

import torch

from recsys_lib.ops.jagged_dense import jagged_to_padded_dense


def cumsum_list(xs: List[int]) -> List[int]:
    """``[0, x0, x0+x1, ...]`` on the host (offsets from lengths)."""
    if not torch.jit.is_scripting():
        return list(itertools.accumulate(xs, initial=0))  # C loop (eager only: TorchScript has no itertools)
    out: List[int] = [0]
    total = 0
    for x in xs:
        total += x
        out.append(total)
    return out


def index_of_keys(keys: List[str]) -> Dict[str, int]:
    """Key -> its position in ``keys`` (a repeated key maps to its last position, as in TorchRec)."""
    if not torch.jit.is_scripting():
        return dict(zip(keys, range(len(keys))))  # C loop (eager only)
    out: Dict[str, int] = {}
    for i, k in enumerate(keys):
        out[k] = i
    return out


def is_integer_dtype(dtype: torch.dtype) -> bool:
    return dtype == torch.int32 or dtype == torch.int64 or dtype == torch.int16 or dtype == torch.int8 or dtype == torch.uint8


def optional_to(
    t: Optional[torch.Tensor], device: torch.device, non_blocking: bool
) -> Optional[torch.Tensor]:
    if t is None:
        return None
    return t.to(device, non_blocking=non_blocking)


def bags(data: torch.Tensor, offsets: torch.Tensor) -> List[torch.Tensor]:
    """``data[offsets[i]:offsets[i+1]]`` per bag: offsets are indices (need not start at 0; trailing data ignored)."""
    offs: List[int] = offsets.long().tolist()  # int64: TorchScript's tolist() needs it
    n = data.size(0)
    for i in range(len(offs) - 1):
        if offs[i] > offs[i + 1] or offs[i] < 0 or offs[i + 1] > n:
            raise ValueError(
                f"JaggedTensor: bag {i} spans offsets [{offs[i]}, {offs[i + 1]}), expected 0 <= start <= end <= "
                f"{n} (the number of values)"
            )
    return [data[offs[i]: offs[i + 1]] for i in range(len(offs) - 1)]


def padded(
    data: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    desired_length: Optional[int],
    padding_value: float,
) -> torch.Tensor:
    longest: Optional[int] = None
    if desired_length is None:
        longest = int(lengths.max().item()) if lengths.numel() > 0 else 0
        width = longest
    else:
        if desired_length < 0:
            raise ValueError(f"to_padded_dense: desired_length must be >= 0, got {desired_length}")
        width = desired_length
    return jagged_to_padded_dense(data, lengths, offsets, width, padding_value, longest)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b.to(a.dtype)))


def same_optional(a: Optional[torch.Tensor], b: Optional[torch.Tensor]) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return same(a, b)


def copy_parts(dst: object, src: object, non_blocking: bool) -> None:
    """In-place copy of the tensors of one jagged object into another of the same layout (eager only)."""
    for name in ("_values", "_weights", "_lengths", "_offsets"):
        d, s_ = getattr(dst, name), getattr(src, name)
        if (d is None) != (s_ is None):
            raise ValueError(f"copy_: {name[1:]} is present in only one of the two objects")
        if d is not None:
            if d.shape != s_.shape:
                raise ValueError(f"copy_: {name[1:]} shapes differ: {tuple(d.shape)} vs {tuple(s_.shape)}")
            d.copy_(s_, non_blocking=non_blocking)


def tensors_nbytes(tensors: List[Optional[torch.Tensor]]) -> int:
    """Bytes held by the present tensors (``size_in_bytes`` of the jagged types)."""
    total = 0
    for t in tensors:
        if t is not None:
            total += t.numel() * t.element_size()
    return total


def record_streams(tensors: List[Optional[torch.Tensor]], stream: torch.Stream) -> None:
    """``record_stream`` on each present tensor (eager only)."""
    for t in tensors:
        if t is not None:
            t.record_stream(stream)


def release_storages(tensors: List[Optional[torch.Tensor]]) -> None:
    """Shrink the storage of each present tensor to 0 bytes (``clear_storage``; eager only)."""
    for t in tensors:
        if t is not None:
            t.untyped_storage().resize_(0)


def flat(t: torch.Tensor) -> torch.Tensor:
    """``t.view(-1)`` without a dispatch when ``t`` is already 1-D (lengths usually are)."""
    return t if t.dim() == 1 else t.view(-1)
