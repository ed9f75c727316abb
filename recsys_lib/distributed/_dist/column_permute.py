"""Reordering the columns of a pooled output ``(B, sum D)`` by a fixed permutation, as one autograd node.

``index_select`` along dim 1 under autograd would answer the gradient with a zero ``(B, sum D)`` tensor and a
scatter-add into it; for a permutation the gradient is the inverse permutation's gather, one pass. Both outputs
are large fresh buffers written at once, so they come from ``host_empty`` (2 MB pages on CPU).
"""

import torch

from recsys_lib.ops._host_buffers import host_empty
from recsys_lib.pt2.checks import is_pt2_compiling


def inverse_permutation(permute: torch.Tensor) -> torch.Tensor:
    """``inverse[permute[i]] = i`` for a permutation ``permute`` of ``0 .. n-1``."""
    inverse = torch.empty_like(permute)
    inverse[permute] = torch.arange(permute.numel(), dtype=permute.dtype, device=permute.device)
    return inverse


def _gather_columns(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    out = host_empty((values.size(0), index.numel()), values.dtype, values.device)
    return torch.index_select(values, 1, index, out=out)


class _PermuteColumns(torch.autograd.Function):
    @staticmethod
    def forward(ctx, values: torch.Tensor, permute: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(inverse)
        return _gather_columns(values, permute)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (inverse,) = ctx.saved_tensors
        return _gather_columns(grad, inverse), None, None


def permute_columns(values: torch.Tensor, permute: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
    """``values.index_select(1, permute)`` (same values and gradient) for a permutation ``permute`` whose inverse
    is ``inverse``; under PT2 tracing the plain ``index_select``."""
    if is_pt2_compiling():
        return values.index_select(1, permute)
    if torch.is_grad_enabled() and values.requires_grad:
        return _PermuteColumns.apply(values, permute, inverse)
    return _gather_columns(values, permute)
