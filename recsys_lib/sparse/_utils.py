"""Small host-side helpers shared by the jagged types (TorchScript-safe)."""

import itertools
from typing import List, Optional

import torch


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


def is_integer_dtype(dtype: torch.dtype) -> bool:
    return dtype == torch.int32 or dtype == torch.int64 or dtype == torch.int16 or dtype == torch.int8 or dtype == torch.uint8


def optional_to(
    t: Optional[torch.Tensor], device: torch.device, non_blocking: bool
) -> Optional[torch.Tensor]:
    if t is None:
        return None
    return t.to(device, non_blocking=non_blocking)
