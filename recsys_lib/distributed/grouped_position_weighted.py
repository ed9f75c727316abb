"""Position weights applied on the rank that looks a feature up (TorchRec's
``torchrec.distributed.grouped_position_weighted``).

A position-weighted feature gives id ``j`` of a bag the weight ``position_weight[j]``. Sharded, the weights
are computed *after* the input dist, next to the lookup, so their gradient is local. The position of an id is
its index in the original bag: table-wise and column-wise shards receive whole bags (positions from the
offsets, ``fbgemm.offsets_range``); row-wise shards receive pieces of bags, so the input dist sends each id's
original position as its weight (``need_pos``) and it is read from there::

    bag [a, b, c], 2 row blocks: rank 0 gets [a, c] with weights (positions) [0, 2] -> pw[0], pw[2]
                                 rank 1 gets [b]    with weight  (position)  [1]    -> pw[1]

Every rank keeps all position-weight parameters (data parallel); :class:`SumGradAcrossRanks` adds their
gradients over the ranks (each rank only computes the part of the batch it looked up).
"""

from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class SumGradAcrossRanks(torch.autograd.Function):
    """Identity forward; backward all-reduces (sums) the gradient over ``pg``. Every rank must run the
    backward (the caller ties the result into every rank's output)."""

    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, pg: Optional[dist.ProcessGroup]) -> torch.Tensor:
        ctx.pg = pg
        return flat.view_as(flat)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:
        grad = grad.contiguous().clone()
        if ctx.pg is not None and dist.get_world_size(ctx.pg) > 1:
            dist.all_reduce(grad, group=ctx.pg)
        return grad, None


class ScaleGrad(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``factor``."""

    @staticmethod
    def forward(ctx: Any, t: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return t.view_as(t)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:
        return grad * ctx.factor, None


def positions(features: KeyedJaggedTensor, positions_in_weights: bool) -> torch.Tensor:
    """Index of every id in its (original) bag: from the weights (row-split input) or from the offsets."""
    if positions_in_weights:
        weights = features.weights_or_none()
        if weights is None:
            raise ValueError("position weights: the row-split input dist should have sent positions as weights")
        return weights.to(torch.int64)
    values = features.values()
    return torch.ops.fbgemm.offsets_range(features.offsets().to(torch.int64), values.numel())


def apply_position_weights(
    features: KeyedJaggedTensor,
    position_weights: Dict[str, torch.Tensor],
    positions_in_weights: bool = False,
    grad_scale: float = 1.0,
) -> KeyedJaggedTensor:
    """``features`` with weights ``position_weights[f][position]`` for listed features, 1 elsewhere.

    ``grad_scale`` multiplies the weights' gradient (sharded modules use it to undo the lookup's
    per-sample-weight gradient scaling). Positions past a feature's ``max_feature_length`` raise
    ``ValueError`` (naming the feature).
    """
    pos = positions(features, positions_in_weights)
    lpk: List[int] = features.length_per_key()
    parts: List[torch.Tensor] = []
    for key, p in zip(features.keys(), pos.split(lpk)):
        pw = position_weights.get(key, None)
        if pw is None:
            parts.append(torch.ones(p.numel(), device=p.device))
            continue
        if p.numel() > 0 and int(p.max()) >= pw.numel():
            raise ValueError(f"feature {key!r}: a bag is longer than its max_feature_length {pw.numel()}")
        parts.append(pw.index_select(0, p))
    weights = torch.cat(parts) if parts else torch.empty(0, device=features.values().device)
    if grad_scale != 1.0:
        weights = ScaleGrad.apply(weights, grad_scale)
    vbe = features.variable_stride_per_key()
    return KeyedJaggedTensor(
        keys=features.keys(), values=features.values(), weights=weights, lengths=features.lengths(),
        stride=None if vbe else features.stride(),
        stride_per_key_per_rank=features.stride_per_key_per_rank() if vbe else None,
    )


class GroupedPositionWeightedModule(BaseGroupedFeatureProcessor):
    """Position weights of several features, applied to a KJT at once (see the module docstring).

    Args:
        max_feature_lengths: ``{feature: longest bag}``; parameters ``position_weights.<feature>`` (init 1).
        device: where the parameters live.

    Example::

        gpw = GroupedPositionWeightedModule({"f0": 10})
        weighted = gpw(kjt)          # kjt["f0"] ids weighted by position_weights["f0"][position in bag]
    """

    def __init__(self, max_feature_lengths: Dict[str, int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        for f, n in max_feature_lengths.items():
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise ValueError(f"GroupedPositionWeightedModule: max length of {f!r} must be a positive int, got {n!r}")
        self.max_feature_lengths = dict(max_feature_lengths)
        self.position_weights = nn.ParameterDict(
            {f: nn.Parameter(torch.ones(n, device=device)) for f, n in max_feature_lengths.items()}
        )

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """``features`` weighted by position; a KJT that carries weights carries the positions in them (as a
        row-wise input dist sends them), as in TorchRec."""
        positions_in_weights = features.weights_or_none() is not None
        return apply_position_weights(features, dict(self.position_weights.items()), positions_in_weights)

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, nn.Parameter]]:
        for name, param in self.position_weights.items():
            yield (f"{prefix}." if prefix else "") + f"position_weights.{name}", param

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[Tuple[str, torch.Tensor]]:
        yield from ()

    def state_dict(  # type: ignore[override]
        self, destination: Optional[Dict[str, Any]] = None, prefix: str = "", keep_vars: bool = False
    ) -> Dict[str, Any]:
        """``{prefix + "position_weights.<feature>": weights}``."""
        out: Dict[str, Any] = OrderedDict() if destination is None else destination
        for name, param in self.position_weights.items():
            out[f"{prefix}position_weights.{name}"] = param if keep_vars else param.detach()
        return out
