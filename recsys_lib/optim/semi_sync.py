"""Semi-synchronous training: a local optimizer every step, a global (outer) optimizer every N steps.

::

    step 1 .. N-1:  local.step()
    step N:         local.step(); global.zero_grad(); global_inner.global_step(local_step_counter, closure)
    step N+1 ..:    local.step() ...   (the global step fires whenever local_step_counter % N == 0)

The global optimizer is a ``KeyedOptimizer`` (usually ``KeyedOptimizerWrapper``) whose wrapped torch optimizer
provides ``global_step(local_step_counter, closure)``, e.g. DiLoCo: it compares the parameters with its own
copy of the global model, averages the difference over the workers and applies an outer update.

State is exposed as one ``KeyedOptimizer``: each parameter's local state names get the prefix
``semi_sync_local_`` and global ones ``semi_sync_global_``; the two step counters appear as parameters
``__semisync_global_step_counter__`` / ``__semisync_local_step_counter__`` and inside every global parameter's
state, so a checkpoint restores the schedule too.
"""

import logging
from typing import Any, Collection, Dict, List, Mapping, Optional, Union

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor
from torch.optim.optimizer import ParamsT

from recsys_lib.optim._base import init_optimizer_hooks
from recsys_lib.optim.keyed import KeyedOptimizer, KeyedOptimizerWrapper, OptimizerWrapper

logger: logging.Logger = logging.getLogger(__name__)

SEMI_SYNC_GLOBAL_OPTIM_KEY: str = "semi_sync_global_optim"
SEMI_SYNC_LOCAL_OPTIM_KEY: str = "semi_sync_local_optim"
SEMI_SYNC_GLOBAL_STATE_KEY: str = "semi_sync_global_"
SEMI_SYNC_LOCAL_STATE_KEY: str = "semi_sync_local_"
SEMISYNC_GLOBAL_STEP_COUNTER_KEY: str = "__semisync_global_step_counter__"
SEMISYNC_LOCAL_STEP_COUNTER_KEY: str = "__semisync_local_step_counter__"


class SemisyncOptimizer(KeyedOptimizer):
    """Local optimizer every step; global optimizer's ``global_step`` every ``num_local_steps`` steps.

    Args:
        global_params: the parameters the global optimizer synchronises (tensors, or param groups).
        optimizer: the local ``KeyedOptimizer`` (e.g. Adam in a ``KeyedOptimizerWrapper``).
        global_optimizer: the global ``KeyedOptimizer``; its wrapped optimizer provides ``global_step``.
        num_local_steps: local steps between two global steps.
        semi_sync_worker_shard_group: process group of the workers (kept for metrics).
        offload_global_model: keep the global model copy on the host (a flag for the global optimizer).
        non_blocking: host↔device copies are non-blocking (a flag for the global optimizer).

    Example::

        opt = SemisyncOptimizer(model.parameters(), local_kopt, diloco_kopt, num_local_steps=16)
        for batch in data:
            loss(model(batch)).backward(); opt.step(); opt.zero_grad()
    """

    def __init__(
        self,
        global_params: ParamsT,
        optimizer: KeyedOptimizer,
        global_optimizer: KeyedOptimizer,
        num_local_steps: int = 16,
        semi_sync_worker_shard_group: Optional[dist.ProcessGroup] = None,
        offload_global_model: bool = False,
        non_blocking: bool = False,
    ) -> None:
        if global_params is None:
            raise ValueError("SemisyncOptimizer: global_params must be provided")
        if num_local_steps < 1:
            raise ValueError(f"SemisyncOptimizer: num_local_steps must be >= 1, got {num_local_steps}")
        self._optimizer: KeyedOptimizer = optimizer
        self._global_optimizer: KeyedOptimizer = global_optimizer
        items = list(global_params)
        if items and isinstance(items[0], dict):
            worker: List[torch.Tensor] = [p for group in items for p in group["params"]]  # type: ignore[index]
        else:
            worker = [p[1] if isinstance(p, tuple) else p for p in items]  # type: ignore[misc]
        self._worker_model_params: List[torch.Tensor] = [p for p in worker if isinstance(p, torch.Tensor)]
        self._num_local_steps: int = num_local_steps
        self._local_step_counter: torch.Tensor = torch.tensor(0, dtype=torch.int64)
        self._global_step_counter: torch.Tensor = torch.tensor(0, dtype=torch.int64)
        self._worker_shard_group: Optional[dist.ProcessGroup] = semi_sync_worker_shard_group
        self._offload_global_model: bool = offload_global_model
        self._non_blocking: bool = non_blocking
        self._loaded_state: Dict[Any, Dict[str, Any]] = {}
        init_optimizer_hooks(self)

    @property
    def param_groups(self) -> Collection[Mapping[str, Any]]:  # type: ignore[override]
        """The local optimizer's groups, then the global one's."""
        return [g for opt in (self._optimizer, self._global_optimizer) for g in opt.param_groups]

    @property
    def params(self) -> Mapping[str, Union[torch.Tensor, ShardedTensor]]:
        """Both optimizers' parameters (a name in both must be the same tensor) plus the two step counters."""
        out: Dict[str, Union[torch.Tensor, ShardedTensor]] = dict(self._optimizer.params)
        for key, p in self._global_optimizer.params.items():
            if key in out and out[key] is not p:
                raise ValueError(f"SemisyncOptimizer: parameter {key!r} is a different tensor in the two optimizers")
            out[key] = p
        out[SEMISYNC_GLOBAL_STEP_COUNTER_KEY] = self._global_step_counter
        out[SEMISYNC_LOCAL_STEP_COUNTER_KEY] = self._local_step_counter
        return out

    @params.setter
    def params(self, value: Mapping[str, Union[torch.Tensor, ShardedTensor]]) -> None:
        raise AttributeError("SemisyncOptimizer.params is derived from its two optimizers")

    @property
    def state(self) -> Mapping[torch.Tensor, Any]:  # type: ignore[override]
        """``{param: {prefixed state name: value}}``; global params also carry the two step counters."""
        out: Dict[Any, Dict[str, Any]] = {
            p: {SEMI_SYNC_LOCAL_STATE_KEY + k: v for k, v in s.items()} for p, s in self._optimizer.state.items()
        }
        for p, s in self._global_optimizer.state.items():
            entry = out.setdefault(p, {})
            entry.update({SEMI_SYNC_GLOBAL_STATE_KEY + k: v for k, v in s.items()})
            entry[SEMISYNC_GLOBAL_STEP_COUNTER_KEY] = self._global_step_counter
            entry[SEMISYNC_LOCAL_STEP_COUNTER_KEY] = self._local_step_counter
        self._loaded_state = out  # what load_state_dict writes into; post_load_state_dict reads it back
        return out

    def _global_target(self) -> Any:
        if isinstance(self._global_optimizer, (KeyedOptimizerWrapper, OptimizerWrapper)):
            return self._global_optimizer._optimizer
        return self._global_optimizer

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:  # type: ignore[override]
        """Local step; every ``num_local_steps``-th call also the global optimizer's ``global_step``."""
        self._local_step_counter.add_(1)
        local_steps = int(self._local_step_counter.item())
        self._optimizer.step(closure)
        if local_steps % self._num_local_steps != 0:
            return
        target = self._global_target()
        global_step = getattr(target, "global_step", None)  # the outer optimizer's protocol (e.g. DiLoCo)
        if global_step is None:
            raise TypeError(
                f"SemisyncOptimizer: the global optimizer ({type(target).__name__}) has no "
                "global_step(local_step_counter, closure)"
            )
        self._global_step_counter.add_(1)
        self._global_optimizer.zero_grad()
        global_step(self._local_step_counter, closure)
        logger.info("SemisyncOptimizer: global step %d after %d local steps", int(self._global_step_counter), local_steps)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)
        self._global_optimizer.zero_grad(set_to_none=set_to_none)

    def post_load_state_dict(self) -> None:
        """Splits the loaded (prefixed) state back into the two optimizers and restores the step counters."""
        combined = dict(self._loaded_state) if self._loaded_state else dict(self.state)
        self._post_load_state_dict_step_counter(combined)
        for opt, prefix in ((self._optimizer, SEMI_SYNC_LOCAL_STATE_KEY), (self._global_optimizer, SEMI_SYNC_GLOBAL_STATE_KEY)):
            for p, p_state in combined.items():
                if p in opt.state and any(k.startswith(prefix) for k in p_state):
                    opt.state[p].update(self._extract_prefixed_state(p_state, prefix))
        for opt in (self._optimizer, self._global_optimizer):
            opt.post_load_state_dict()

    def save_param_groups(self, save: bool) -> None:
        self.defaults["_save_param_groups"] = bool(save)
        self._optimizer.save_param_groups(save)
        self._global_optimizer.save_param_groups(save)

    def __repr__(self) -> str:
        return f"{SEMI_SYNC_LOCAL_OPTIM_KEY}: {self._optimizer!r}, {SEMI_SYNC_GLOBAL_OPTIM_KEY}: {self._global_optimizer!r}"

    def set_optimizer_step(self, step: int) -> None:
        for opt in (self._optimizer, self._global_optimizer):
            if hasattr(opt, "set_optimizer_step"):
                opt.set_optimizer_step(step)  # type: ignore[attr-defined]

    def update_hyper_parameters(self, params_dict: Dict[str, Any]) -> None:
        for opt in (self._optimizer, self._global_optimizer):
            if hasattr(opt, "update_hyper_parameters"):
                opt.update_hyper_parameters(params_dict)  # type: ignore[attr-defined]

    @staticmethod
    def _extract_prefixed_state(param_state: Dict[str, Any], prefix: str) -> Dict[str, Any]:
        """The entries of ``param_state`` named ``prefix + name``, as ``{name: value}``."""
        return {k[len(prefix):]: v for k, v in param_state.items() if k.startswith(prefix)}

    def _post_load_state_dict_step_counter(self, combined_state: Dict[torch.Tensor, Any]) -> None:
        """Takes the step counters from the first parameter state that carries them."""
        found_global = found_local = False
        for p_state in combined_state.values():
            if not found_global and SEMISYNC_GLOBAL_STEP_COUNTER_KEY in p_state:
                self._global_step_counter = p_state[SEMISYNC_GLOBAL_STEP_COUNTER_KEY]
                found_global = True
            if not found_local and SEMISYNC_LOCAL_STEP_COUNTER_KEY in p_state:
                self._local_step_counter = p_state[SEMISYNC_LOCAL_STEP_COUNTER_KEY]
                found_local = True
        missing = [n for n, ok in (("global", found_global), ("local", found_local)) if not ok]
        if missing:
            raise RuntimeError(f"SemisyncOptimizer: missing {' and '.join(missing)} step counter(s) in checkpoint")
