"""Gradient accumulation around any train pipeline: step the optimizer every ``num_steps`` micro-batches.

The wrapper swaps the pipeline's optimizer for one that skips ``step``/``zero_grad`` between boundaries, and
runs the micro-batches before a boundary under DDP's ``no_sync`` (gradients accumulate locally and are
all-reduced once). During the first ``num_warmup_steps`` steps, gradients are synced every step.

Example::

    pipeline = TrainPipelineSparseDist(model, optimizer, device)
    ga = GradientAccumulationWrapper(pipeline, optimizer, model, GradientAccumulationConfig(True, num_steps=4))
    while True:
        ga.progress(it)       # optimizer.step() on every 4th call (and on StopIteration for the remainder)
"""

import contextlib
from dataclasses import dataclass
from typing import Any, ContextManager, Generic, Iterator, List, Optional, TypeVar

import torch
from torch import nn

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class GradientAccumulationConfig:
    """``is_enabled``; ``num_steps`` micro-batches per optimizer step; ``num_warmup_steps`` synced steps first."""

    is_enabled: bool = False
    num_steps: int = 1
    num_warmup_steps: int = 1

    def __post_init__(self) -> None:
        if self.num_steps < 1:
            raise ValueError(f"GradientAccumulationConfig.num_steps must be >= 1, got {self.num_steps}")


class _GAOptimizerWrapper:
    """Passes ``step`` through at accumulation boundaries only; ``zero_grad`` once after each real step."""

    def __init__(self, optimizer: torch.optim.Optimizer, config: GradientAccumulationConfig) -> None:
        self._optimizer = optimizer
        self._config = config
        self._current_step = 0
        self._needs_zero_grad = True

    def _should_step(self) -> bool:
        return (self._current_step + 1) % self._config.num_steps == 0

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._needs_zero_grad:
            self._optimizer.zero_grad(set_to_none=set_to_none)
            self._needs_zero_grad = False

    def step(self, *args: Any, **kwargs: Any) -> None:
        if self._should_step():
            self._optimizer.step(*args, **kwargs)
            self._needs_zero_grad = True

    def advance_step(self) -> None:
        self._current_step += 1

    def reset(self) -> None:
        self._current_step = 0
        self._needs_zero_grad = True

    def set_step(self, step: int) -> None:
        self._current_step = step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._optimizer, name)


class GradientAccumulationWrapper(Generic[In, Out]):
    """Wraps ``pipeline`` (whose ``_optimizer`` it replaces when enabled); see the module docstring."""

    def __init__(
        self,
        pipeline: Any,
        optimizer: torch.optim.Optimizer,
        model: nn.Module,
        config: GradientAccumulationConfig,
    ) -> None:
        self._pipeline = pipeline
        self._model = model
        self._config = config
        self._optimizer_wrapper = _GAOptimizerWrapper(optimizer, config)
        self._cached_ddp_modules: Optional[List[nn.Module]] = None
        if config.is_enabled and hasattr(pipeline, "_optimizer"):
            pipeline._optimizer = self._optimizer_wrapper

    def _should_sync_grad(self, is_last_batch: bool = False) -> bool:
        step = self.current_step
        if is_last_batch or step == 0 or step < self._config.num_warmup_steps:
            return True
        return (step + 1) % self._config.num_steps == 0

    def _get_ddp_modules(self) -> List[nn.Module]:
        if self._cached_ddp_modules is None:
            ddp = nn.parallel.DistributedDataParallel
            self._cached_ddp_modules = [m for m in self._model.modules() if isinstance(m, ddp)]
        return self._cached_ddp_modules

    def _compose_no_sync_contexts(self, modules: List[nn.Module]) -> ContextManager[None]:
        stack = contextlib.ExitStack()
        for module in modules:
            stack.enter_context(module.no_sync())
        return stack

    def _get_no_sync_context(self) -> ContextManager[None]:
        return self._compose_no_sync_contexts(self._get_ddp_modules())

    def _flush_accumulated_gradients(self, steps_accumulated: int) -> bool:
        if steps_accumulated % self._config.num_steps == 0:
            return False
        self._optimizer_wrapper._optimizer.step()
        self._optimizer_wrapper._optimizer.zero_grad(set_to_none=True)
        self._optimizer_wrapper._needs_zero_grad = False
        return True

    def _advance_state(self) -> None:
        self._optimizer_wrapper.advance_step()

    def progress(self, dataloader_iter: Iterator[In], is_last_batch: Optional[bool] = None) -> Out:
        """One micro-batch; ``StopIteration`` flushes the remainder (a step with what was accumulated)."""
        if not self._config.is_enabled:
            return self._pipeline.progress(dataloader_iter)
        sync = self._should_sync_grad(is_last_batch=bool(is_last_batch))
        ctx: ContextManager[Any] = contextlib.nullcontext() if sync else self._get_no_sync_context()
        try:
            with ctx:
                result = self._pipeline.progress(dataloader_iter)
        except StopIteration:
            self._flush_accumulated_gradients(self.current_step)
            raise
        self._advance_state()
        if is_last_batch:
            self._flush_accumulated_gradients(self.current_step)
        return result

    def reset(self) -> None:
        self._optimizer_wrapper.reset()
        if hasattr(self._pipeline, "reset"):
            self._pipeline.reset()

    @property
    def optimizer_wrapper(self) -> _GAOptimizerWrapper:
        return self._optimizer_wrapper

    @property
    def current_step(self) -> int:
        return self._optimizer_wrapper._current_step

    def set_step(self, step: int) -> None:
        self._optimizer_wrapper.set_step(step)
