"""Jagged ↔ padded dense conversion (``JaggedTensor.to_padded_dense``).

::

    values = [1, 2, 3, 4], lengths = [1, 3], desired_length = 2
    ->  [[1, 0],
         [2, 3]]          # rows truncated to desired_length, padded with padding_value

Variants: ``*_reference`` (scatter by computed row/column), ``*_fbgemm`` (``fbgemm.jagged_to_padded_dense``) and
``*_masked`` (one ``masked_scatter`` into the padded buffer; for dtypes FBGEMM lacks). ``values`` may be 1-D (N,) or
2-D (N, D); the result is (B, L) or (B, L, D).
"""

from typing import Optional

import torch

from recsys_lib.ops._fbgemm import FBGEMM_AVAILABLE
from recsys_lib.ops._host import lengths_fill_exactly
from recsys_lib.ops.cumsum import complete_cumsum


def _padded_shape_like(values: torch.Tensor, rows: int, width: int, padding_value: float) -> torch.Tensor:
    if values.dim() == 1:
        return torch.full((rows, width), padding_value, dtype=values.dtype, device=values.device)
    return torch.full((rows, width, values.size(1)), padding_value, dtype=values.dtype, device=values.device)


def jagged_to_padded_dense_reference(
    values: torch.Tensor, lengths: torch.Tensor, max_length: int, padding_value: float = 0.0
) -> torch.Tensor:
    """Plain torch: each value's (row, column) computed explicitly, columns ≥ ``max_length`` dropped."""
    rows = lengths.numel()
    lengths64 = lengths.to(torch.int64)
    starts = complete_cumsum(lengths64)[:-1]
    row_of = torch.repeat_interleave(torch.arange(rows, device=values.device), lengths64, output_size=values.size(0))
    col_of = torch.arange(values.size(0), device=values.device) - starts.index_select(0, row_of)
    keep = col_of < max_length
    out = _padded_shape_like(values, rows, max_length, padding_value)
    out[row_of[keep], col_of[keep]] = values[keep]
    return out


def jagged_to_padded_dense_fbgemm(
    values: torch.Tensor, offsets: torch.Tensor, max_length: int, padding_value: float = 0.0
) -> torch.Tensor:
    """``fbgemm.jagged_to_padded_dense`` (it wants 2-D values); zero padding uses ``jagged_2d_to_dense`` (~10%
    less overhead, same kernel family, differentiable)."""
    if padding_value == 0.0:
        if values.dim() == 1:
            return torch.ops.fbgemm.jagged_2d_to_dense(values.unsqueeze(-1), offsets, max_length).squeeze(-1)
        return torch.ops.fbgemm.jagged_2d_to_dense(values, offsets, max_length)
    if values.dim() == 1:
        return torch.ops.fbgemm.jagged_to_padded_dense(values.unsqueeze(-1), [offsets], [max_length], padding_value).squeeze(-1)
    return torch.ops.fbgemm.jagged_to_padded_dense(values, [offsets], [max_length], padding_value)


def jagged_to_padded_dense_masked(
    values: torch.Tensor,
    lengths: torch.Tensor,
    max_length: int,
    padding_value: float = 0.0,
    longest: Optional[int] = None,
) -> torch.Tensor:
    """Fast path: ``masked_scatter`` of the values into a buffer as wide as the longest row, then truncated.

    ``longest`` is ``max(lengths)`` if the caller knows it (else computed here: a host sync).
    """
    if longest is None:
        longest = int(lengths.max().item()) if lengths.numel() > 0 else 0
    width = max(max_length, longest)
    rows = lengths.numel()
    mask = torch.arange(width, device=lengths.device).unsqueeze(0) < lengths.view(-1, 1)
    out = _padded_shape_like(values, rows, width, padding_value)
    if values.dim() == 1:
        out = out.masked_scatter(mask, values)
    else:
        out = out.masked_scatter(mask.unsqueeze(-1), values)
    if width != max_length:
        out = out[:, :max_length].contiguous()
    return out


def _pack_min_rows() -> int:
    """Below this many rows ``pack_segments`` plus its data check is no faster than ``jagged_1d_to_dense`` (CPU)."""
    return 4096


def _packable(values: torch.Tensor, lengths: torch.Tensor, max_length: int) -> bool:
    """Whether ``fbgemm.pack_segments`` (one pass over the lengths, no offsets needed) may serve this call.

    Its CPU kernel lacks int64/float64, its backward leaves the gradient of truncated values uninitialised and it
    writes out of bounds on negative lengths: so it serves only CPU tensors outside autograd whose lengths are
    non-negative and sum to the number of values (reading CPU lengths is no device sync; plain host lengths are
    checked in one NumPy pass, others with two torch reductions); small inputs skip it (see ``_pack_min_rows``).
    Anything else takes ``jagged_1d_to_dense``, whose behaviour on such input is unchanged.
    """
    if max_length <= 0 or lengths.numel() < _pack_min_rows():
        return False
    if values.device.type != "cpu" or lengths.device.type != "cpu":
        return False
    if values.requires_grad and torch.is_grad_enabled():
        return False
    dt = values.dtype
    if not (dt == torch.float32 or dt == torch.int32 or dt == torch.float16 or dt == torch.bfloat16):
        return False
    if not torch.jit.is_scripting():
        exact = lengths_fill_exactly(lengths, values.size(0))
        if exact is not None:
            return exact
    return int(lengths.min()) >= 0 and int(lengths.sum()) == values.size(0)


def _jagged_to_padded_dense_fast(
    values: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    max_length: int,
    padding_value: float = 0.0,
    longest: Optional[int] = None,
) -> torch.Tensor:
    # FBGEMM's kernels need no host sync and measured fastest on CPU too; they lack float64 (and bool), which take
    # the masked torch path. ``offsets`` may be None: computed here only if the chosen kernel needs them.
    if values.dtype == torch.float64 or values.dtype == torch.bool:
        return jagged_to_padded_dense_masked(values, lengths, max_length, padding_value, longest)
    if padding_value == 0.0 and values.dim() == 1:  # the common case, called directly
        if _packable(values, lengths, max_length):
            return torch.ops.fbgemm.pack_segments(values, lengths, max_length)
        if offsets is None:
            offsets = complete_cumsum(lengths)
        if max_length > 0:  # the 1-D kernel (differentiable) skips the (N, 1) view round trip: ~20% less overhead
            return torch.ops.fbgemm.jagged_1d_to_dense(values, offsets, max_length, 0)
        return torch.ops.fbgemm.jagged_2d_to_dense(values.unsqueeze(-1), offsets, max_length).squeeze(-1)
    if offsets is None:
        offsets = complete_cumsum(lengths)
    return jagged_to_padded_dense_fbgemm(values, offsets, max_length, padding_value)


def _jagged_to_padded_dense_torch(
    values: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    max_length: int,
    padding_value: float = 0.0,
    longest: Optional[int] = None,
) -> torch.Tensor:
    return jagged_to_padded_dense_masked(values, lengths, max_length, padding_value, longest)


# Dispatch chosen once at import (TorchScript cannot read a global flag).
jagged_to_padded_dense = _jagged_to_padded_dense_fast if FBGEMM_AVAILABLE else _jagged_to_padded_dense_torch
