"""DLRM's pairwise dot interaction as one autograd node.

``combined`` is ``(B, n, D)``; the output is ``<combined_i, combined_j>`` for ``i < j`` in row-major
upper-triangle order, ``(B, choose(n, 2))``. Autograd through ``bmm(x, x^T)`` and an advanced index
would run two batched matmuls, an index-put into a zero ``(B, n, n)`` and an add for the two uses of
``x``; here the gradient is one gather that writes the symmetric ``(B, n, n)`` matrix ``S`` with
``S[k, j] = S[j, k] = grad(k, j)`` and one ``bmm(S, x)``. The forward reads the upper triangle with
``index_select`` over the flattened products, exactly the same values as the index.
"""

from typing import Dict, Tuple

import torch
import torch.nn.functional as F

_INDEX: Dict[Tuple[int, str], Tuple[torch.Tensor, torch.Tensor]] = {}


def _indices(n: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(upper, symmetric)``: flat positions ``i * n + j`` of the ``i < j`` pairs, and for each of the
    ``n * n`` positions the pair it reads (``choose(n, 2)`` on the diagonal: a zero column)."""
    key = (n, str(device))
    hit = _INDEX.get(key)
    if hit is None:
        rows, cols = torch.triu_indices(n, n, offset=1)
        upper = rows * n + cols
        pairs = torch.arange(upper.numel())
        symmetric = torch.full((n * n,), upper.numel(), dtype=torch.long)
        symmetric[upper] = pairs
        symmetric[cols * n + rows] = pairs
        hit = (upper.to(device), symmetric.to(device))
        _INDEX[key] = hit
    return hit


def upper_dots_no_grad(combined: torch.Tensor) -> torch.Tensor:
    """The pairwise dots without recording autograd history (inference)."""
    n = combined.size(1)
    upper, _ = _indices(n, combined.device)
    products = torch.bmm(combined, combined.transpose(1, 2))
    return products.view(combined.size(0), n * n).index_select(1, upper)


class _UpperDots(torch.autograd.Function):
    @staticmethod
    def forward(ctx, combined: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(combined)
        return upper_dots_no_grad(combined)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (combined,) = ctx.saved_tensors
        n = combined.size(1)
        _, symmetric = _indices(n, combined.device)
        sym = F.pad(grad, (0, 1)).index_select(1, symmetric).view(combined.size(0), n, n)
        return torch.bmm(sym, combined)


@torch.jit.unused
def upper_dots(combined: torch.Tensor) -> torch.Tensor:
    """``(B, n, D)`` -> ``(B, choose(n, 2))``, eager mode (the caller keeps TorchScript / fx / PT2 on the
    plain ``bmm`` + index formulation)."""
    if torch.is_grad_enabled() and combined.requires_grad:
        return _UpperDots.apply(combined)
    return upper_dots_no_grad(combined)
