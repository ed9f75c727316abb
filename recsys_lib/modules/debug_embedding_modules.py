"""Debug wrappers of ``EmbeddingCollection`` / ``EmbeddingBagCollection`` that catch NaN/Inf gradients.

With ``debug_mode=True`` every output tensor is wrapped so that its incoming gradient is checked in backward;
a NaN or Inf raises ``RuntimeError`` naming the output (``ec[feature].values`` / ``ebc.values``). With
``debug_mode=False`` the wrappers return the inner module's output unchanged. State-dict keys gain the prefix
``ec.`` / ``ebc.`` (the inner module's attribute name).

Example::

    debug_ebc = DebugEmbeddingBagCollection(tables, device=torch.device("cpu"), debug_mode=True)
    loss = debug_ebc(kjt).values().sum() * float("nan")
    loss.backward()   # RuntimeError: NaN/Inf gradient reaching ebc.values
"""

from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


class _CheckGradFinite(torch.autograd.Function):
    """Identity forward; backward raises if the gradient holds NaN or Inf."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, tag: str) -> torch.Tensor:  # type: ignore[override]
        ctx.tag = tag
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:  # type: ignore[override]
        if grad is not None and not bool(torch.isfinite(grad).all()):
            nan = int(torch.isnan(grad).sum())
            inf = int(torch.isinf(grad).sum())
            raise RuntimeError(f"NaN/Inf gradient reaching {ctx.tag}: {nan} NaN and {inf} Inf entries of "
                               f"shape {tuple(grad.shape)}")
        return grad, None


def _checked(t: torch.Tensor, tag: str, on: bool) -> torch.Tensor:
    return _CheckGradFinite.apply(t, tag) if on and t.requires_grad else t


class DebugEmbeddingCollection(nn.Module):
    """``EmbeddingCollection`` (attribute ``ec``) whose outputs check their gradients in ``debug_mode``.

    Args:
        tables: the EC's table configs.
        device: where the tables live.
        debug_mode: wrap every output ``JaggedTensor``'s values with the NaN/Inf gradient check.
    """

    def __init__(self, tables: List[EmbeddingConfig], device: torch.device, debug_mode: bool = False) -> None:
        super().__init__()
        self.ec = EmbeddingCollection(tables=tables, device=device)
        self.debug_mode = debug_mode

    def forward(self, features: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        """The EC's ``{name: JaggedTensor}`` (values ``(N_f, D)``)."""
        out = self.ec(features)
        if not self.debug_mode:
            return out
        return {
            name: JaggedTensor(values=_checked(jt.values(), f"ec[{name}].values", True), lengths=jt.lengths(),
                               weights=jt.weights_or_none())
            for name, jt in out.items()
        }


class DebugEmbeddingBagCollection(nn.Module):
    """``EmbeddingBagCollection`` (attribute ``ebc``) whose pooled output checks its gradient in ``debug_mode``.

    Args:
        tables: the EBC's table configs.
        device: where the tables live.
        debug_mode: wrap the output ``KeyedTensor``'s values ``(B, sum(D))`` with the NaN/Inf gradient check.
    """

    def __init__(self, tables: List[EmbeddingBagConfig], device: torch.device, debug_mode: bool = False) -> None:
        super().__init__()
        self.ebc = EmbeddingBagCollection(tables=tables, device=device)
        self.debug_mode = debug_mode

    def forward(self, features: KeyedJaggedTensor) -> KeyedTensor:
        out = self.ebc(features)
        if not self.debug_mode:
            return out
        return KeyedTensor(keys=out.keys(), length_per_key=out.length_per_key(),
                           values=_checked(out.values(), "ebc.values", True), key_dim=out.key_dim())
