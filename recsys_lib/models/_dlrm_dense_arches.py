"""The dense building blocks of DLRM: bottom MLP, feature interactions, top MLP.

Public names are re-exported by :mod:`recsys_lib.models.dlrm` (TorchRec's import path). Shapes use
``B`` batch, ``F`` sparse features, ``D`` embedding dim::

    dense_features (B, in) --DenseArch--> (B, D) ┐
    sparse_features (B, F, D) ───────────────────┴──InteractionArch──> (B, D + F + choose(F, 2))
                                                                        --OverArch--> (B, 1) logits
"""

from typing import Any, Dict, List, Optional

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.models._dot_interaction import upper_dots
from recsys_lib.modules.mlp import MLP
from recsys_lib.pt2.checks import is_pt2_compiling

try:  # data-dependent input checks are skipped while torch.fx records a graph
    from torch.fx._symbolic_trace import is_fx_symbolic_tracing as _is_fx_tracing
except ImportError:  # older torch
    from torch.fx._symbolic_trace import is_fx_tracing as _is_fx_tracing


def choose(n: int, k: int) -> int:
    """Binomial coefficient ``n! / (k! (n-k)!)``; 0 when ``k < 0`` or ``k > n``."""
    if k < 0 or k > n:
        return 0
    k = min(k, n - k)
    num = 1
    den = 1
    for t in range(1, k + 1):
        num *= n - t + 1
        den *= t
    return num // den


def _check_layer_sizes(owner: str, name: str, sizes: List[int], min_len: int) -> None:
    if len(sizes) < min_len:
        raise ValueError(f"{owner}: {name} needs at least {min_len} layer size(s), got {list(sizes)}")


def _check_interaction_inputs(dense_features: torch.Tensor, sparse_features: torch.Tensor, num_sparse: int) -> None:
    if dense_features.dim() != 2:
        raise ValueError("interaction: dense_features must be (B, D), got shape " + str(list(dense_features.shape)))
    if (
        sparse_features.dim() != 3
        or sparse_features.size(0) != dense_features.size(0)
        or sparse_features.size(1) != num_sparse
        or sparse_features.size(2) != dense_features.size(1)
    ):
        raise ValueError(
            "interaction: sparse_features must be (B, F, D) = "
            + str([dense_features.size(0), num_sparse, dense_features.size(1)])
            + ", got shape "
            + str(list(sparse_features.shape))
        )


def _maybe_check(dense_features: torch.Tensor, sparse_features: torch.Tensor, num_sparse: int) -> None:
    if torch.jit.is_scripting():
        _check_interaction_inputs(dense_features, sparse_features, num_sparse)
    elif not _is_fx_tracing():
        _check_interaction_inputs(dense_features, sparse_features, num_sparse)


@public_at("recsys_lib.models.dlrm")
class DenseArch(nn.Module):
    """Bottom MLP over the dense features (ReLU after every layer).

    Args:
        in_features: number of dense features.
        layer_sizes: MLP widths; the last must equal the embedding dim ``D`` inside DLRM.
        device: parameter device.

    Example::

        arch = DenseArch(in_features=10, layer_sizes=[15, 8])
        y = arch(torch.randn(4, 10))  # (4, 8)
    """

    def __init__(self, in_features: int, layer_sizes: List[int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.model: nn.Module = MLP(in_features, layer_sizes, bias=True, activation="relu", device=device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``(B, in_features)`` -> ``(B, layer_sizes[-1])``."""
        return self.model(features)


@public_at("recsys_lib.models.dlrm")
class InteractionArch(nn.Module):
    """Pairwise dot products between the dense output and every sparse embedding.

    ``combined = [dense, sparse_1, ..., sparse_F]`` (``F + 1`` vectors of size ``D``); the output is
    ``dense`` followed by ``<combined_i, combined_j>`` for ``i < j`` in row-major upper-triangle order
    (the non-persistent buffer ``triu_indices = triu_indices(F + 1, F + 1, offset=1)``). With ``F = 0``
    the dense features are returned unchanged.

    Args:
        num_sparse_features: ``F``.

    Example::

        inter = InteractionArch(num_sparse_features=3)
        y = inter(torch.randn(2, 4), torch.randn(2, 3, 4))  # (2, 4 + 3 + choose(3, 2)) = (2, 10)
    """

    def __init__(self, num_sparse_features: int) -> None:
        super().__init__()
        if num_sparse_features < 0:
            raise ValueError(f"InteractionArch: num_sparse_features must be >= 0, got {num_sparse_features}")
        self.F: int = num_sparse_features
        self.register_buffer(
            "triu_indices",
            torch.triu_indices(self.F + 1, self.F + 1, offset=1),
            persistent=False,
        )

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, *args: Any) -> None:
        # ``triu_indices`` is derived from F and not saved; accept checkpoints that still carry it.
        state_dict.pop(prefix + "triu_indices", None)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        """``(B, D)``, ``(B, F, D)`` -> ``(B, D + F + choose(F, 2))``."""
        if self.F <= 0:
            return dense_features
        _maybe_check(dense_features, sparse_features, self.F)
        combined = torch.cat((dense_features.unsqueeze(1), sparse_features), dim=1)  # (B, F+1, D)
        if torch.jit.is_scripting():
            flat = self._traced_dots(combined)
        elif _is_fx_tracing() or is_pt2_compiling():
            flat = self._traced_dots(combined)
        else:  # eager: one autograd node, half the backward matmuls (same values)
            flat = upper_dots(combined, self.triu_indices)
        return torch.cat((dense_features, flat), dim=1)

    def _traced_dots(self, combined: torch.Tensor) -> torch.Tensor:
        interactions = torch.bmm(combined, torch.transpose(combined, 1, 2))  # (B, F+1, F+1)
        return interactions[:, self.triu_indices[0], self.triu_indices[1]]  # (B, choose(F+1, 2))


@public_at("recsys_lib.models.dlrm")
class InteractionDCNArch(nn.Module):
    """Feeds ``cat(dense, sparse)`` flattened to ``(B, (F + 1) * D)`` through a cross network.

    Args:
        num_sparse_features: ``F``.
        crossnet: module mapping ``(B, (F + 1) * D)`` to ``(B, (F + 1) * D)``, e.g. ``LowRankCrossNet``.

    Example::

        inter = InteractionDCNArch(3, LowRankCrossNet(in_features=16, num_layers=2))
        y = inter(torch.randn(2, 4), torch.randn(2, 3, 4))  # (2, 16)
    """

    def __init__(self, num_sparse_features: int, crossnet: nn.Module) -> None:
        super().__init__()
        if num_sparse_features < 0:
            raise ValueError(f"InteractionDCNArch: num_sparse_features must be >= 0, got {num_sparse_features}")
        self.F: int = num_sparse_features
        self.crossnet = crossnet

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        """``(B, D)``, ``(B, F, D)`` -> ``(B, (F + 1) * D)``."""
        if self.F <= 0:
            return dense_features
        _maybe_check(dense_features, sparse_features, self.F)
        combined = torch.cat((dense_features.unsqueeze(1), sparse_features), dim=1).flatten(1)  # (B, (F+1)*D)
        return self.crossnet(combined)


@public_at("recsys_lib.models.dlrm")
class InteractionProjectionArch(nn.Module):
    """Projects ``cat(dense, sparse)`` twice and takes all dot products between the projections.

    ``P1 = branch1(x)`` viewed as ``(B, p1, D)``, ``P2 = branch2(x)`` as ``(B, p2, D)``; the output is
    ``cat(dense, flatten(P1 @ P2^T))`` of width ``D + p1 * p2``.

    Args:
        num_sparse_features: ``F``.
        interaction_branch1: maps ``(B, (F + 1) * D)`` to ``(B, p1 * D)``.
        interaction_branch2: maps ``(B, (F + 1) * D)`` to ``(B, p2 * D)``.

    Example::

        inter = InteractionProjectionArch(3, DenseArch(16, [8, 12]), DenseArch(16, [8]))
        y = inter(torch.randn(2, 4), torch.randn(2, 3, 4))  # (2, 4 + 3 * 2)
    """

    def __init__(
        self, num_sparse_features: int, interaction_branch1: nn.Module, interaction_branch2: nn.Module
    ) -> None:
        super().__init__()
        if num_sparse_features < 0:
            raise ValueError(
                f"InteractionProjectionArch: num_sparse_features must be >= 0, got {num_sparse_features}"
            )
        self.F: int = num_sparse_features
        self.interaction_branch1 = interaction_branch1
        self.interaction_branch2 = interaction_branch2

    def forward(self, dense_features: torch.Tensor, sparse_features: torch.Tensor) -> torch.Tensor:
        """``(B, D)``, ``(B, F, D)`` -> ``(B, D + p1 * p2)``."""
        if self.F <= 0:
            return dense_features
        _maybe_check(dense_features, sparse_features, self.F)
        batch = dense_features.size(0)
        dim = dense_features.size(1)
        combined = torch.cat((dense_features.unsqueeze(1), sparse_features), dim=1).flatten(1)  # (B, (F+1)*D)
        projected_1 = self.interaction_branch1(combined).reshape(batch, -1, dim)  # (B, p1, D)
        projected_2 = self.interaction_branch2(combined).reshape(batch, -1, dim)  # (B, p2, D)
        interactions = torch.bmm(projected_1, torch.transpose(projected_2, 1, 2))  # (B, p1, p2)
        return torch.cat((dense_features, interactions.flatten(1)), dim=1)


@public_at("recsys_lib.models.dlrm")
class OverArch(nn.Module):
    """Top MLP: ReLU layers ``layer_sizes[:-1]`` then a plain linear layer to ``layer_sizes[-1]``.

    ``self.model = Sequential(MLP(in_features, layer_sizes[:-1]), Linear(layer_sizes[-2], layer_sizes[-1]))``,
    so the state-dict keys are ``model.0._mlp.<i>._linear.*`` and ``model.1.*``.

    Args:
        in_features: input width.
        layer_sizes: at least two sizes; the last is the number of logits.
        device: parameter device.

    Example::

        arch = OverArch(in_features=10, layer_sizes=[5, 1])
        logits = arch(torch.randn(4, 10))  # (4, 1)
    """

    def __init__(self, in_features: int, layer_sizes: List[int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        layer_sizes = list(layer_sizes)
        _check_layer_sizes("OverArch", "layer_sizes", layer_sizes, 2)
        self.model: nn.Module = nn.Sequential(
            MLP(in_features, layer_sizes[:-1], bias=True, activation="relu", device=device),
            nn.Linear(layer_sizes[-2], layer_sizes[-1], bias=True, device=device),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``features``: ``(B, in_features)`` -> ``(B, layer_sizes[-1])``."""
        return self.model(features)
