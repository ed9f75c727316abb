"""Learning-rate warmup/decay schedules applied by wrapping a :class:`KeyedOptimizer`.

``WarmupOptimizer`` sets ``group[lr_param] = lr * multiplier`` in every param group, before the first
step and after each step. ``iter`` is the number of steps taken so far (0 before the first). The active
stage is the first one with ``iter < stage.max_iters`` (``max_iters`` are absolute, increasing
boundaries); once ``iter`` passes the last boundary the last stage keeps applying.

    policy                           multiplier(iter) (then × lr_scale)
    NONE                             1
    LINEAR                           value + (1 - value) * iter / max_iters
    CONSTANT                         value
    POLY                             (1 - min(iter, D) / D) ** value            D = decay_iters (max_iters if -1)
    STEP                             value ** (iter // D)
    INVSQRT                          1 / sqrt(max(iter, 1))
    COSINE_ANNEALING_WARM_RESTARTS   value + (1 - value) * (1 + cos(pi * (iter % sgdr_period) / sgdr_period)) / 2
    INTERPOLATE                      value before start_interpolating_iters, then linear to end_value at max_iters

The counter is checkpointed as optimizer state of a stand-in parameter named ``param_name``:
``state_dict()["state"]["__warmup"] == {"warmup": tensor(iter)}``; loading it restores the schedule.

Example::

    opt = WarmupOptimizer(
        KeyedOptimizerWrapper(dict(model.named_parameters()), lambda p: torch.optim.SGD(p, lr=0.1)),
        stages=[WarmupStage(WarmupPolicy.LINEAR, max_iters=100, value=0.01),
                WarmupStage(WarmupPolicy.POLY, max_iters=1000, value=2.0)],
        lr=0.1,
    )
"""

import math
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any, List, Optional

import torch

from recsys_lib.optim.keyed import KeyedOptimizer, OptimizerWrapper


@unique
class WarmupPolicy(Enum):
    NONE = "none"
    LINEAR = "linear"
    CONSTANT = "constant"
    POLY = "poly"
    STEP = "step"
    INVSQRT = "inv_sqrt"
    COSINE_ANNEALING_WARM_RESTARTS = "cosine_annealing_warm_restarts"
    INTERPOLATE = "interpolate"


@dataclass
class WarmupStage:
    """One stage of a schedule (fields and defaults as TorchRec's); checked at construction."""

    policy: WarmupPolicy = WarmupPolicy.LINEAR
    max_iters: int = 1
    value: float = 1.0
    lr_scale: float = 1.0
    decay_iters: int = -1
    sgdr_period: int = 1
    start_interpolating_iters: Optional[int] = None
    end_value: Optional[float] = None

    def __post_init__(self) -> None:
        if isinstance(self.policy, str):
            try:
                self.policy = WarmupPolicy(self.policy)
            except ValueError:
                raise ValueError(
                    f"WarmupStage: unknown policy {self.policy!r}; expected one of {[p.value for p in WarmupPolicy]}"
                ) from None
        if not isinstance(self.policy, WarmupPolicy):
            raise TypeError(f"WarmupStage: policy must be a WarmupPolicy, got {self.policy!r}")
        for name in ("max_iters", "decay_iters", "sgdr_period"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"WarmupStage: {name} must be an int, got {v!r}")
        if self.max_iters < 1:
            raise ValueError(f"WarmupStage: max_iters must be >= 1, got {self.max_iters}")
        if self.sgdr_period < 1:
            raise ValueError(f"WarmupStage: sgdr_period must be >= 1, got {self.sgdr_period}")
        if self.decay_iters != -1 and self.decay_iters < 1:
            raise ValueError(f"WarmupStage: decay_iters must be >= 1 (or -1 for max_iters), got {self.decay_iters}")
        if self.policy == WarmupPolicy.INTERPOLATE:
            if self.start_interpolating_iters is None or self.end_value is None:
                raise ValueError("WarmupStage: INTERPOLATE needs start_interpolating_iters and end_value")
            if not 0 <= self.start_interpolating_iters < self.max_iters:
                raise ValueError(
                    f"WarmupStage: start_interpolating_iters={self.start_interpolating_iters} must be in "
                    f"[0, max_iters={self.max_iters})"
                )


def _multiplier(stage: WarmupStage, iter: int) -> float:
    policy = stage.policy
    decay = stage.decay_iters if stage.decay_iters > 0 else stage.max_iters
    if policy == WarmupPolicy.LINEAR:
        m = stage.value + (1.0 - stage.value) * iter / stage.max_iters
    elif policy == WarmupPolicy.CONSTANT:
        m = stage.value
    elif policy == WarmupPolicy.POLY:
        m = (1.0 - min(iter, decay) / decay) ** stage.value
    elif policy == WarmupPolicy.STEP:
        m = stage.value ** (iter // decay)
    elif policy == WarmupPolicy.INVSQRT:
        m = 1.0 / math.sqrt(max(iter, 1))
    elif policy == WarmupPolicy.COSINE_ANNEALING_WARM_RESTARTS:
        t = iter % stage.sgdr_period
        m = stage.value + (1.0 - stage.value) * 0.5 * (1.0 + math.cos(math.pi * t / stage.sgdr_period))
    elif policy == WarmupPolicy.INTERPOLATE:
        start = stage.start_interpolating_iters or 0
        end_value = stage.end_value if stage.end_value is not None else stage.value
        frac = min(max(iter - start, 0) / (stage.max_iters - start), 1.0)
        m = stage.value + (end_value - stage.value) * frac
    else:  # NONE
        m = 1.0
    return m * stage.lr_scale


class WarmupOptimizer(OptimizerWrapper):
    """Sets the learning rate of a keyed optimizer from a list of :class:`WarmupStage` s (see module doc).

    Args:
        optimizer: the optimizer whose param groups get the learning rate.
        stages: at least one stage, ``max_iters`` strictly increasing.
        lr: base learning rate multiplied by the stage multiplier.
        lr_param: param-group key to set (added to groups that lack it, as TorchRec does).
        param_name: key under which the iteration counter is checkpointed.
    """

    def __init__(
        self,
        optimizer: KeyedOptimizer,
        stages: List[WarmupStage],
        lr: float = 0.1,
        lr_param: str = "lr",
        param_name: str = "__warmup",
    ) -> None:
        super().__init__(optimizer)
        if not isinstance(stages, (list, tuple)):
            raise ValueError("WarmupOptimizer: stages must be a list of WarmupStage")
        for i, s in enumerate(stages):
            if not isinstance(s, WarmupStage):
                raise TypeError(f"WarmupOptimizer: stages[{i}] must be a WarmupStage, got {type(s).__name__}")
            if i and s.max_iters <= stages[i - 1].max_iters:
                raise ValueError(
                    f"WarmupOptimizer: stage max_iters must increase (absolute boundaries), got "
                    f"{[st.max_iters for st in stages]}"
                )
        if not isinstance(lr, (int, float)) or isinstance(lr, bool) or not lr >= 0:
            raise ValueError(f"WarmupOptimizer: lr must be a number >= 0, got {lr!r}")
        if not isinstance(param_name, str) or not param_name:
            raise ValueError(f"WarmupOptimizer: param_name must be a non-empty str, got {param_name!r}")
        # As TorchRec: after the given stages a final NONE stage (multiplier 1) runs forever; a stage is left once
        # the iteration count passes its max_iters (iteration max_iters itself still belongs to it).
        self._stages = list(stages) + [WarmupStage(policy=WarmupPolicy.NONE, max_iters=1 << 62, value=1.0)]
        self._lr = float(lr)
        self._lr_param = lr_param
        # checkpointed as TorchRec's: {"warmup": tensor([iteration, stage index])}
        self._warmup_state = {"warmup": torch.tensor([0, 0], dtype=torch.long)}
        self._add_owned_state(param_name, self._warmup_state)
        self._iter = 0
        self._stage_id = 0
        self._set_lr()

    def _set_lr(self) -> None:
        lr = self._lr * _multiplier(self._stages[self._stage_id], self._iter)
        for group in self.param_groups:
            group[self._lr_param] = lr

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        super().step(closure)
        self._iter += 1
        if self._iter > self._stages[self._stage_id].max_iters and self._stage_id + 1 < len(self._stages):
            self._stage_id += 1
        self._warmup_state["warmup"] = torch.tensor([self._iter, self._stage_id], dtype=torch.long)
        self._set_lr()

    def post_load_state_dict(self) -> None:
        super().post_load_state_dict()
        state = self._warmup_state["warmup"].view(-1).tolist()
        self._iter = int(state[0])
        self._stage_id = int(state[1]) if len(state) > 1 else 0
        self._set_lr()
