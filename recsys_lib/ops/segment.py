"""Sums over contiguous segments (``length_per_key`` of a variable-batch KJT).

::

    values = [1, 2, 3, 4, 5], segment offsets = [0, 2, 5]  ->  [3, 12]
"""

import torch

from recsys_lib.ops._fbgemm import FBGEMM_AVAILABLE
from recsys_lib.ops.cumsum import complete_cumsum


def segment_sum_csr_reference(csr_seg: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Plain torch: differences of the running sum at the segment boundaries (two kernels)."""
    running = complete_cumsum(values)
    seg = csr_seg.to(torch.int64)
    return running.index_select(0, seg[1:]) - running.index_select(0, seg[:-1])


def segment_sum_csr_fbgemm(csr_seg: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``fbgemm.segment_sum_csr(batch_size=1, ...)`` (float32 values only on CPU)."""
    return torch.ops.fbgemm.segment_sum_csr(1, csr_seg, values)


def _segment_sum_csr_fast(csr_seg: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    if values.dtype == torch.float32:  # FBGEMM's CPU kernel covers float only
        return segment_sum_csr_fbgemm(csr_seg, values)
    return segment_sum_csr_reference(csr_seg, values)


# Sum of ``values[csr_seg[i]:csr_seg[i+1]]`` for each segment ``i``; ``csr_seg``: (S+1,) -> (S,).
segment_sum_csr = _segment_sum_csr_fast if FBGEMM_AVAILABLE else segment_sum_csr_reference
