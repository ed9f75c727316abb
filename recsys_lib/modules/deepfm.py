"""DeepFM building blocks (``torchrec.modules.deepfm``).

Both modules take a list of per-feature embeddings, each ``(B, ...)``, and flatten them into one
``(B, K)`` row per sample (``K`` = total number of scalars), e.g. for two features::

    embeddings[0]: (B, 2, 3) -> 6 columns ┐
    embeddings[1]: (B, 4)    -> 4 columns ┴─> x: (B, 10)
"""

from typing import List

import torch
from torch import nn


def _flatten_input(inputs: List[torch.Tensor]) -> torch.Tensor:
    if len(inputs) == 0:
        raise ValueError("expected a non-empty list of embedding tensors, got []")
    return torch.cat([t.flatten(1) for t in inputs], dim=1)


class DeepFM(nn.Module):
    """The deep half of DeepFM: ``dense_module(cat(flatten(e) for e in embeddings))``.

    Args:
        dense_module: any module mapping ``(B, K)`` to ``(B, out)``; its parameters appear
            under ``dense_module.*``.

    Example::

        deep = DeepFM(dense_module=nn.Sequential(nn.Linear(10, 4), nn.ReLU()))
        y = deep([torch.randn(3, 2, 3), torch.randn(3, 4)])  # (3, 4)
    """

    def __init__(self, dense_module: nn.Module) -> None:
        super().__init__()
        if not isinstance(dense_module, nn.Module):
            raise TypeError(f"DeepFM dense_module must be an nn.Module, got {type(dense_module).__name__}")
        self.dense_module = dense_module

    def forward(self, embeddings: List[torch.Tensor]) -> torch.Tensor:
        """``embeddings``: list of ``(B, ...)`` -> ``dense_module`` output ``(B, out)``."""
        return self.dense_module(_flatten_input(embeddings))


class FactorizationMachine(nn.Module):
    """Second-order factorization-machine term over all flattened scalars.

    With ``x = cat(flatten(e) for e in embeddings)`` of shape ``(B, K)``::

        out = 0.5 * ((sum_k x_k)^2 - sum_k x_k^2) = sum_{j < k} x_j x_k      # (B, 1)

    i.e. the sum of all pairwise products, as TorchRec computes it (the embeddings are flattened
    before the sums, so products between different embedding dimensions are included).

    Example::

        fm = FactorizationMachine()
        y = fm([torch.randn(3, 2, 3), torch.randn(3, 4)])  # (3, 1)
    """

    def __init__(self) -> None:
        super().__init__()

    def forward(self, embeddings: List[torch.Tensor]) -> torch.Tensor:
        """``embeddings``: list of ``(B, ...)`` -> ``(B, 1)``."""
        x = _flatten_input(embeddings)  # (B, K)
        sum_of_input = torch.sum(x, dim=1, keepdim=True)  # (B, 1)
        sum_of_square = torch.sum(x * x, dim=1, keepdim=True)  # (B, 1)
        return 0.5 * (sum_of_input * sum_of_input - sum_of_square)
