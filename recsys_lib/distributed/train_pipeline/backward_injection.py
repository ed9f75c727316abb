"""Backward injection: run a function when the gradient reaches a given point of the model's backward.

An ``InjectionSite`` names a module and how to hook it:

* ``ACTIVATION`` — a forward hook finds a tensor in the module's output (or input) with ``tensor_finder`` and
  registers ``hook_fn`` on it (``Tensor.register_hook``): it fires when that activation's gradient is known.
* ``PARAM_GRAD`` — ``register_post_accumulate_grad_hook`` on one parameter of the module, picked by
  ``hook_position`` (0.0 the first, 1.0 the last), walking outward to one whose hook will fire.

Example::

    site = InjectionSite("dense_arch", FirstGradTensorFinder())
    handle = register_backward_hook(site, model, lambda grad: print(grad.shape))
"""

from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Iterator, List, Optional, Protocol, Tuple

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from recsys_lib.distributed._core.enums import ShardingType
from recsys_lib.distributed._core.awaitable import _resolve, LazyAwaitable


class InjectionTargetType(Enum):
    PARAM_GRAD = "param_grad"
    ACTIVATION = "activation"


class GradTensorFinder(Protocol):
    """Finds the tensor to hook in a module's forward ``(module, inputs, output)``."""

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Optional[torch.Tensor]: ...


class FirstGradTensorFinder:
    """The first tensor requiring grad in the output (or ``inputs`` with ``use_input``), searched depth-first
    through tuples, lists, dicts, KeyedTensors (values) and (Keyed)JaggedTensors (weights, then values)."""

    def __init__(self, use_input: bool = False) -> None:
        self.use_input = use_input

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Optional[torch.Tensor]:
        return self._search(inputs if self.use_input else output)

    def _search(self, value: Any) -> Optional[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            return value if value.requires_grad else None
        if isinstance(value, (list, tuple)):
            items: List[Any] = list(value)
        elif isinstance(value, dict):
            items = list(value.values())
        else:
            items = []
            for attr in ("weights_or_none", "values"):
                getter = getattr(value, attr, None)
                if callable(getter):
                    items.append(getter())
        for item in items:
            found = self._search(item)
            if found is not None:
                return found
        return None


class OutputDistTensorFinder(FirstGradTensorFinder):
    """The first grad-requiring tensor of a sharded module's output (after its output dist)."""

    def __init__(self, sharding_type: ShardingType = ShardingType.TABLE_WISE) -> None:
        super().__init__(use_input=False)
        self.sharding_type = sharding_type

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Optional[torch.Tensor]:
        if isinstance(output, LazyAwaitable):
            output = _resolve(output)  # memoised: the model's own use of the output must not wait again
        elif hasattr(output, "wait") and callable(output.wait):
            output = output.wait()
        return self._search(output)


@dataclass
class InjectionSite:
    """Module ``fqn`` + how to find the tensor + which mechanism (see the module docstring)."""

    fqn: str
    tensor_finder: GradTensorFinder
    target_type: InjectionTargetType = InjectionTargetType.ACTIVATION
    hook_position: float = 1.0


def will_hook_fire(p: torch.Tensor) -> bool:
    """Whether a post-accumulate-grad hook on ``p`` can fire (a leaf that requires grad)."""
    return p.requires_grad and p.is_leaf


def _summarize_unhookable(named_params: List[Tuple[str, nn.Parameter]]) -> str:
    return ", ".join(f"{n} (requires_grad={p.requires_grad}, leaf={p.is_leaf})" for n, p in named_params[:8])


def _walk_outward(start: int, n: int) -> Iterator[int]:
    """``start, start+1, start-1, start+2, ...`` within ``[0, n)``."""
    yield start
    for d in range(1, n):
        for i in (start + d, start - d):
            if 0 <= i < n:
                yield i


def _position_to_index(position: float, length: int) -> int:
    if not 0.0 <= position <= 1.0:
        raise ValueError(f"hook_position must be in [0.0, 1.0], got {position}")
    return min(length - 1, int(round(position * (length - 1))))


def _find_module(model: nn.Module, fqn: str) -> nn.Module:
    candidates = [fqn, f"module.{fqn}", f"_dmp_wrapped_module.{fqn}", f"_dmp_wrapped_module.module.{fqn}"]
    names = dict(model.named_modules())
    for name in candidates:
        if name in names:
            return names[name]
    for name, module in names.items():
        if name.endswith("." + fqn):
            return module
    raise ValueError(f"register_backward_hook: no module {fqn!r} in {type(model).__name__}")


def _register_param_grad_hook(site: InjectionSite, target: nn.Module, hook_fn: Callable[[torch.Tensor], None]) -> RemovableHandle:
    named = list(target.named_parameters())
    if not named:
        raise ValueError(f"register_backward_hook: module {site.fqn!r} has no parameters (PARAM_GRAD)")
    start = _position_to_index(site.hook_position, len(named))
    for i in _walk_outward(start, len(named)):
        param = named[i][1]
        if will_hook_fire(param):
            return param.register_post_accumulate_grad_hook(lambda p: hook_fn(p.grad))
    raise ValueError(f"register_backward_hook: no parameter of {site.fqn!r} gets a gradient: {_summarize_unhookable(named)}")


def _register_activation_hook(site: InjectionSite, target: nn.Module, hook_fn: Callable[[torch.Tensor], None]) -> RemovableHandle:
    def forward_hook(module: nn.Module, inputs: Any, output: Any) -> None:
        if not torch.is_grad_enabled():
            return
        tensor = site.tensor_finder(module, inputs, output)
        if tensor is None:
            raise RuntimeError(f"backward injection at {site.fqn!r}: the tensor finder found no tensor requiring grad")
        tensor.register_hook(lambda grad: hook_fn(grad))

    return target.register_forward_hook(forward_hook)


def register_backward_hook(site: InjectionSite, model: nn.Module, hook_fn: Callable[[torch.Tensor], None]) -> RemovableHandle:
    """Registers ``hook_fn(grad)`` at ``site`` (see the module docstring); returns a removable handle."""
    target = _find_module(model, site.fqn)
    if site.target_type == InjectionTargetType.PARAM_GRAD:
        return _register_param_grad_hook(site, target, hook_fn)
    if site.target_type == InjectionTargetType.ACTIVATION:
        return _register_activation_hook(site, target, hook_fn)
    raise ValueError(f"register_backward_hook: unknown target type {site.target_type!r}")
