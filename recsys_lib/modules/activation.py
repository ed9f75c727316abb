"""Activation modules used by the dense towers (``torchrec.modules.activation``)."""

from typing import List, Optional, Union

import torch
from torch import nn


class SwishLayerNorm(nn.Module):
    """Swish gated by a layer norm: ``y = x * sigmoid(layer_norm(x))``.

    The norm runs over the trailing ``input_dims`` dimensions. State-dict keys are
    ``norm.0.weight`` and ``norm.0.bias`` (``norm`` is ``Sequential(LayerNorm, Sigmoid)``).

    Args:
        input_dims: trailing shape normalised over, e.g. ``D`` or ``[N, D]``.
        device: where the layer-norm parameters live.

    Example::

        act = SwishLayerNorm(8)
        y = act(torch.randn(4, 8))  # (4, 8)
    """

    def __init__(
        self,
        input_dims: Union[int, List[int], torch.Size],
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        dims = [input_dims] if isinstance(input_dims, int) else list(input_dims)
        if len(dims) == 0 or any((not isinstance(d, int)) or d <= 0 for d in dims):
            raise ValueError(f"SwishLayerNorm: input_dims must be positive ints, got {input_dims!r}")
        self.norm: nn.Module = nn.Sequential(nn.LayerNorm(input_dims, device=device), nn.Sigmoid())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """``input``: ``(..., *input_dims)`` -> same shape."""
        return input * self.norm(input)
