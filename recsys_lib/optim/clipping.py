"""Gradient clipping before the wrapped optimizer's step, locally or over sharded parameters.

``NORM`` rescales all gradients so their joint ``norm_type``-norm is at most ``max_gradient``
(as ``torch.nn.utils.clip_grad_norm_``); ``VALUE`` clamps each element to ``[-max_gradient, max_gradient]``.

With ``enable_global_grad_clip`` the norm is that of the *whole* model across ranks. A parameter listed in
``param_to_pgs`` is split over the given process groups (e.g. its sharding group): its local ``|g|^p``
sums (or max for ``inf``) are all-reduced over each of them in turn, so the result covers every shard.
Parameters not listed are replicated (data parallel) and counted once. One all-reduce per distinct group
list per step.
"""

import math
from enum import Enum, unique
from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from recsys_lib.optim.keyed import KeyedOptimizer, OptimizerWrapper


@unique
class GradientClipping(Enum):
    NORM = "norm"
    VALUE = "value"
    NONE = "none"


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if isinstance(t, DTensor) else t


def _parse_norm_type(norm_type: Union[float, str]) -> float:
    if isinstance(norm_type, str):
        if norm_type.lower() != "inf":
            raise ValueError(f"GradientClippingOptimizer: norm_type string must be 'inf', got {norm_type!r}")
        return math.inf
    if isinstance(norm_type, bool) or not isinstance(norm_type, (int, float)) or not norm_type > 0:
        raise ValueError(f"GradientClippingOptimizer: norm_type must be > 0 or 'inf', got {norm_type!r}")
    return float(norm_type)


class GradientClippingOptimizer(OptimizerWrapper):
    """Clips gradients, then steps the wrapped optimizer.

    Args:
        optimizer: the optimizer to wrap.
        clipping: ``NONE``, ``NORM`` or ``VALUE``.
        max_gradient: the norm (``NORM``) or absolute value (``VALUE``) bound, > 0.
        norm_type: p of the p-norm, or ``"inf"``.
        enable_global_grad_clip: compute the norm over all ranks (see module doc).
        param_to_pgs: ``{param: [process groups it is sharded over]}`` for the global norm; a DTensor
            parameter not listed uses its mesh groups on its ``Shard`` dims.
        track_grad_norm: keep the last total norm in ``last_grad_norm`` (``NORM`` only).

    Example::

        opt = GradientClippingOptimizer(keyed_opt, GradientClipping.NORM, max_gradient=1.0)
        loss.backward(); opt.step()   # grads rescaled to norm <= 1, then the inner step
    """

    def __init__(
        self,
        optimizer: KeyedOptimizer,
        clipping: GradientClipping = GradientClipping.NONE,
        max_gradient: float = 0.1,
        norm_type: Union[float, str] = 2.0,
        enable_global_grad_clip: bool = False,
        param_to_pgs: Optional[Dict[torch.nn.Parameter, List[dist.ProcessGroup]]] = None,
        track_grad_norm: bool = False,
    ) -> None:
        super().__init__(optimizer)
        if not isinstance(clipping, GradientClipping):
            raise TypeError(f"GradientClippingOptimizer: clipping must be a GradientClipping, got {clipping!r}")
        if isinstance(max_gradient, bool) or not isinstance(max_gradient, (int, float)) or not max_gradient > 0:
            raise ValueError(f"GradientClippingOptimizer: max_gradient must be > 0, got {max_gradient!r}")
        self._clipping = clipping
        self._max_gradient = float(max_gradient)
        self._norm_type = _parse_norm_type(norm_type)
        self._enable_global_grad_clip = bool(enable_global_grad_clip)
        self._param_to_pgs = dict(param_to_pgs or {})
        self._track_grad_norm = track_grad_norm
        self.last_grad_norm: Optional[torch.Tensor] = None
        self._last_total_grad_norm: Optional[torch.Tensor] = None
        self._params: List[torch.Tensor] = [p for g in self.param_groups for p in g["params"]]
        known = {id(p) for p in self._params}
        for p, pgs in self._param_to_pgs.items():
            if id(p) not in known:
                raise ValueError(
                    f"GradientClippingOptimizer: param_to_pgs has a parameter of shape {list(p.shape)} that the "
                    "optimizer does not update"
                )
            if not isinstance(pgs, (list, tuple)):
                raise TypeError(f"GradientClippingOptimizer: param_to_pgs values must be lists of process groups, got {pgs!r}")

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        if self._clipping == GradientClipping.NORM:
            total = self.clip_grad_norm_()
            self._last_total_grad_norm = total
            if self._track_grad_norm:
                self.last_grad_norm = total
        elif self._clipping == GradientClipping.VALUE:
            grads = [_local(p.grad) for p in self._params if p.grad is not None]
            for g in grads:
                g.clamp_(-self._max_gradient, self._max_gradient)
        super().step(closure)

    @property
    def last_total_grad_norm(self) -> Optional[torch.Tensor]:
        """Total gradient norm measured by the latest ``step()`` with NORM clipping (``None`` before any)."""
        return self._last_total_grad_norm

    @torch.no_grad()
    def compute_total_grad_norm(self) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Total ``norm_type`` norm of all gradients (over the process groups with global clipping), unclipped.

        Returns:
            ``(total_norm, grads)``: a 0-d tensor and the gradient tensors it covers.
        """
        with_grad = [p for p in self._params if p.grad is not None]
        grads = [_local(p.grad) for p in with_grad]
        if not with_grad:
            return torch.tensor(0.0), grads
        if self._enable_global_grad_clip:
            return self._global_norm(with_grad), grads
        norms = torch.stack([torch.linalg.vector_norm(g.detach().float(), self._norm_type) for g in grads])
        return torch.linalg.vector_norm(norms, self._norm_type), grads

    @torch.no_grad()
    def clip_grad_norm_(self) -> Optional[torch.Tensor]:
        """Rescales gradients in place to total norm ``<= max_gradient``; returns the total norm."""
        with_grad = [p for p in self._params if p.grad is not None]
        if not with_grad:
            return None
        if not self._enable_global_grad_clip:
            return torch.nn.utils.clip_grad_norm_(with_grad, self._max_gradient, self._norm_type)
        total = self._global_norm(with_grad)
        coef = torch.clamp(self._max_gradient / (total + 1e-6), max=1.0)
        for p in with_grad:
            g = _local(p.grad)
            g.mul_(coef.to(g.dtype))
        return total

    def _groups_of(self, p: torch.Tensor) -> Tuple[Any, ...]:
        if p in self._param_to_pgs:
            return tuple(self._param_to_pgs[p])
        g = p.grad
        if isinstance(g, DTensor):
            mesh = g.device_mesh
            return tuple(mesh.get_group(d) for d, pl in enumerate(g.placements) if pl.is_shard())
        return ()

    def _global_norm(self, params: List[torch.Tensor]) -> torch.Tensor:
        p_ = self._norm_type
        by_groups: Dict[Tuple[Any, ...], List[torch.Tensor]] = {}
        for p in params:
            by_groups.setdefault(self._groups_of(p), []).append(_local(p.grad).detach().float())
        parts: List[torch.Tensor] = []
        for groups, grads in by_groups.items():
            if math.isinf(p_):
                local = torch.stack([g.abs().max() if g.numel() else g.new_zeros(()) for g in grads]).max()
                op = dist.ReduceOp.MAX
            else:
                local = torch.stack([g.abs().pow(p_).sum() for g in grads]).sum()
                op = dist.ReduceOp.SUM
            for pg in groups:
                dist.all_reduce(local, op=op, group=pg)
            parts.append(local)
        if math.isinf(p_):
            return torch.stack(parts).max()
        return torch.stack(parts).sum().pow(1.0 / p_)
