"""DLRM's pairwise dot interaction as one autograd node.

``combined`` is ``(B, n, D)``; the output is ``<combined_i, combined_j>`` for ``i < j`` in row-major
upper-triangle order, ``(B, choose(n, 2))``. Autograd through ``bmm(x, x^T)`` and an advanced index
would run two batched matmuls, an index-put into a zero ``(B, n, n)`` and an add for the two uses of
``x``; here the gradient is one gather that writes the symmetric ``(B, n, n)`` matrix ``S`` with
``S[k, j] = S[j, k] = grad(k, j)`` and one ``bmm(S, x)``. The forward reads the upper triangle with
``index_select`` over the flattened products, exactly the same values as the index.
"""

from typing import Tuple

import torch
import torch.nn.functional as F


def _symmetric_index(triu_indices: torch.Tensor, n: int) -> torch.Tensor:
    """For each of the ``n * n`` positions of ``S`` the pair it reads; the diagonal reads pair
    ``choose(n, 2)``, a zero column appended to the gradient."""
    rows, cols = triu_indices[0], triu_indices[1]
    pairs = torch.arange(rows.numel(), device=triu_indices.device)
    symmetric = torch.full((n * n,), rows.numel(), dtype=torch.long, device=triu_indices.device)
    symmetric[rows * n + cols] = pairs
    symmetric[cols * n + rows] = pairs
    return symmetric


def upper_dots_no_grad(combined: torch.Tensor, triu_indices: torch.Tensor) -> torch.Tensor:
    """The pairwise dots without recording autograd history (inference)."""
    n = combined.size(1)
    upper = triu_indices[0] * n + triu_indices[1]
    products = torch.bmm(combined, combined.transpose(1, 2))
    return products.view(combined.size(0), n * n).index_select(1, upper)


class _UpperDots(torch.autograd.Function):
    @staticmethod
    def forward(ctx, combined: torch.Tensor, triu_indices: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(combined, triu_indices)
        return upper_dots_no_grad(combined, triu_indices)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:  # type: ignore[override]
        combined, triu_indices = ctx.saved_tensors
        n = combined.size(1)
        sym = F.pad(grad, (0, 1)).index_select(1, _symmetric_index(triu_indices, n)).view(combined.size(0), n, n)
        return torch.bmm(sym, combined), None


@torch.jit.unused
def upper_dots(combined: torch.Tensor, triu_indices: torch.Tensor) -> torch.Tensor:
    """``(B, n, D)`` -> ``(B, choose(n, 2))`` for ``triu_indices = triu_indices(n, n, offset=1)``, eager mode
    (the caller keeps TorchScript / fx / PT2 on the plain ``bmm`` + index formulation)."""
    if torch.is_grad_enabled() and combined.requires_grad:
        return _UpperDots.apply(combined, triu_indices)
    return upper_dots_no_grad(combined, triu_indices)
