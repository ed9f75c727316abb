"""Row-wise Adagrad: one accumulator per row instead of per element (FBGEMM's EXACT_ROWWISE_ADAGRAD).

For a parameter ``W`` of shape ``(R, D)`` with gradient ``G`` the state is ``sum: (R,)`` and ``step``:

    step += 1
    G     = G + weight_decay * W                      # if weight_decay != 0
    sum  += mean(G ** 2, dim=1)                       # (R,)
    clr   = lr / (1 + (step - 1) * lr_decay)
    W    -= clr * G / (sqrt(sum) + eps)[:, None]

A 1-D parameter is treated as ``R`` rows of width 1 (plain Adagrad); higher ranks flatten the trailing
dims into ``D``. Sparse (COO) gradients update only the rows they touch, which is what an embedding
table with ``sparse=True`` produces. Used unfused, this matches the fused TBE update row for row.
"""

from typing import Any, Dict, Iterable, List, Optional

import torch
from torch import optim


def _rows(t: torch.Tensor) -> torch.Tensor:
    # (R, D) view of any parameter: 1-D → (R, 1), N-D → (shape[0], prod(rest)).
    return t.reshape(t.shape[0], -1) if t.dim() > 0 else t.reshape(1, 1)


def adagrad(
    params: List[torch.Tensor],
    grads: List[torch.Tensor],
    state_sums: List[torch.Tensor],
    state_steps: List[torch.Tensor],
    *,
    lr: float,
    weight_decay: float,
    lr_decay: float,
    eps: float,
    maximize: bool,
) -> None:
    """Functional row-wise Adagrad step; updates ``params``, ``state_sums`` and ``state_steps`` in place.

    Args:
        params: parameters, each ``(R, ...)``.
        grads: their gradients (dense, or sparse COO with row indices in dim 0).
        state_sums: per-row accumulators, each ``(R,)``.
        state_steps: scalar step counters (float tensors).
    """
    if not (len(params) == len(grads) == len(state_sums) == len(state_steps)):
        raise ValueError(
            f"adagrad: params/grads/state_sums/state_steps lengths differ: "
            f"{len(params)}/{len(grads)}/{len(state_sums)}/{len(state_steps)}"
        )
    for param, grad, state_sum, step_t in zip(params, grads, state_sums, state_steps):
        step_t += 1
        step = float(step_t.item())
        grad = -grad if maximize else grad
        clr = lr / (1.0 + (step - 1.0) * lr_decay)
        if grad.is_sparse:
            if weight_decay != 0:
                raise ValueError("RowWiseAdagrad: weight_decay is not supported with sparse gradients")
            grad = grad.coalesce()
            rows = grad._indices()[0]
            values = grad._values().reshape(rows.numel(), -1)
            state_sum.index_add_(0, rows, values.pow(2).mean(dim=1))
            std = state_sum.index_select(0, rows).sqrt_().add_(eps)
            _rows(param).index_add_(0, rows, values / std.unsqueeze(1), alpha=-clr)
        else:
            if weight_decay != 0:
                grad = grad.add(param, alpha=weight_decay)
            g = _rows(grad)
            state_sum.add_(g.pow(2).mean(dim=1))
            std = state_sum.sqrt().add_(eps)
            _rows(param).addcdiv_(g, std.unsqueeze(1), value=-clr)


class RowWiseAdagrad(optim.Optimizer):
    """Adagrad with one accumulator per row (see the module docstring for the update).

    Args:
        params: iterable of parameters or param-group dicts.
        lr: learning rate (≥ 0).
        lr_decay: learning-rate decay (≥ 0).
        weight_decay: L2 penalty (≥ 0).
        initial_accumulator_value: starting value of every row's accumulator (≥ 0).
        eps: added to ``sqrt(sum)`` (≥ 0).
        maximize: ascend instead of descend.
        **unused: accepted and ignored (fused-optimizer kwargs pass through here).

    Example::

        emb = torch.nn.Parameter(torch.randn(100, 16))
        opt = RowWiseAdagrad([emb], lr=0.1)
        emb.sum().backward(); opt.step()
        opt.state[emb]["sum"].shape  # torch.Size([100])
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        **unused: Any,
    ) -> None:
        for name, value in (
            ("lr", lr),
            ("lr_decay", lr_decay),
            ("weight_decay", weight_decay),
            ("initial_accumulator_value", initial_accumulator_value),
            ("eps", eps),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"RowWiseAdagrad: {name} must be a number, got {value!r}")
            if not value >= 0.0:
                raise ValueError(f"RowWiseAdagrad: invalid {name}={value!r}, expected >= 0")
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            eps=eps,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            maximize=maximize,
        )
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_param_state(p, group)

    def _init_param_state(self, p: torch.Tensor, group: Dict[str, Any]) -> None:
        # Eager, like torch.optim.Adagrad, so state_dict() is complete before the first step.
        if p.dim() == 0:
            raise ValueError("RowWiseAdagrad: 0-d parameters have no rows; expected shape (R, ...)")
        state = self.state[p]
        state["step"] = torch.tensor(0.0)
        state["sum"] = torch.full(
            (p.shape[0],), float(group["initial_accumulator_value"]), dtype=p.dtype, device=p.device
        )

    @torch.no_grad()
    def step(self, closure: Optional[Any] = None) -> Optional[Any]:  # type: ignore[override]
        """Performs one update of every parameter that has a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params, grads, sums, steps = [], [], [], []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:  # added later through add_param_group
                    self._init_param_state(p, group)
                params.append(p)
                grads.append(p.grad)
                sums.append(state["sum"])
                steps.append(state["step"])
            adagrad(
                params,
                grads,
                sums,
                steps,
                lr=group["lr"],
                weight_decay=group["weight_decay"],
                lr_decay=group["lr_decay"],
                eps=group["eps"],
                maximize=group["maximize"],
            )
        return loss

    def share_memory(self) -> None:
        """Move every parameter's row-sum state into shared memory (for Hogwild-style multi-process training)."""
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["sum"].share_memory_()
