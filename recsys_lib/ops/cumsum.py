"""Lengths → offsets (complete cumulative sum with a leading zero).

::

    lengths = [2, 0, 1]  ->  offsets = [0, 2, 2, 3]      # offsets: (N+1,)
"""

import torch

from recsys_lib.ops._fbgemm import FBGEMM_AVAILABLE


def complete_cumsum_reference(lengths: torch.Tensor) -> torch.Tensor:
    """Plain torch: ``cat([0], cumsum(lengths))`` in the dtype of ``lengths``."""
    out = torch.empty(lengths.numel() + 1, dtype=lengths.dtype, device=lengths.device)
    out[0] = 0
    torch.cumsum(lengths.view(-1), 0, out=out[1:])
    return out


def complete_cumsum_fbgemm(lengths: torch.Tensor) -> torch.Tensor:
    """``fbgemm.asynchronous_complete_cumsum`` (one kernel, no host sync)."""
    if lengths.dim() != 1:
        lengths = lengths.view(-1)
    return torch.ops.fbgemm.asynchronous_complete_cumsum(lengths)


def _complete_cumsum_fast(lengths: torch.Tensor) -> torch.Tensor:
    # hot (every offsets() call): one cheap test, then the op directly
    if lengths.dim() == 1 and (lengths.dtype == torch.int32 or lengths.dtype == torch.int64):
        return torch.ops.fbgemm.asynchronous_complete_cumsum(lengths)
    return complete_cumsum_reference(lengths)


# The dispatch is chosen once at import (TorchScript cannot read a global flag): offsets of a jagged dimension
# from its lengths, ``(N,) -> (N+1,)``.
complete_cumsum = _complete_cumsum_fast if FBGEMM_AVAILABLE else complete_cumsum_reference


def lengths_from_offsets(offsets: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`complete_cumsum`: ``offsets[1:] - offsets[:-1]``."""
    return offsets[1:] - offsets[:-1]


def complete_cumsum_rows_reference(lengths_2d: torch.Tensor) -> torch.Tensor:
    """Plain torch: ``(R, C) -> (R, C + 1)`` offsets of every row (leading zero), in the dtype of ``lengths_2d``."""
    out = torch.zeros((lengths_2d.size(0), lengths_2d.size(1) + 1), dtype=lengths_2d.dtype, device=lengths_2d.device)
    out[:, 1:] = torch.cumsum(lengths_2d, 1)  # (dynamo cannot trace a non-contiguous out=)
    return out


def _complete_cumsum_rows_fast(lengths_2d: torch.Tensor) -> torch.Tensor:
    # FBGEMM's complete cumsum takes 2-D input row by row: one dispatch instead of zeros + slice + cumsum
    if lengths_2d.is_contiguous() and (lengths_2d.dtype == torch.int32 or lengths_2d.dtype == torch.int64):
        return torch.ops.fbgemm.asynchronous_complete_cumsum(lengths_2d)
    return complete_cumsum_rows_reference(lengths_2d)


# Offsets of every row of a 2-D lengths matrix, ``(R, C) -> (R, C + 1)`` (dispatch chosen once at import).
complete_cumsum_rows = _complete_cumsum_rows_fast if FBGEMM_AVAILABLE else complete_cumsum_rows_reference

