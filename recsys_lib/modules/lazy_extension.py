"""Lazy-module helpers: ``LazyModuleExtensionMixin`` and ``lazy_apply``.

``lazy_apply(module, fn)`` defers ``module.apply(fn)`` until after the module's first forward pass, when the
shapes of lazily-initialised parameters (``nn.LazyLinear`` etc.) are known::

    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU())
    lazy_apply(model, init_weights)      # nothing happens yet
    model(torch.randn(2, 5))             # parameters materialise, then init_weights runs on every submodule
"""

from typing import Any, Callable, Dict, Tuple

from torch import nn
from torch.nn.modules.lazy import LazyModuleMixin


class LazyModuleExtensionMixin(LazyModuleMixin):
    """``LazyModuleMixin`` whose ``initialize_parameters`` also receives the forward's keyword arguments.

    Subclasses implement ``initialize_parameters(self, *args, **kwargs)`` with the same signature as
    ``forward``; it runs once, before the first forward.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Replace the parent's hook with one that passes kwargs through (same semantics otherwise).
        self._initialize_hook.remove()
        self._initialize_hook = self.register_forward_pre_hook(_infer_with_kwargs, with_kwargs=True)

    def apply(self, fn: Callable[[nn.Module], None]) -> nn.Module:
        """``nn.Module.apply``, refused while the lazy parameters are not materialised (run one forward first,
        or use :func:`lazy_apply` to defer ``fn``)."""
        if hasattr(self, "_initialize_hook"):
            raise RuntimeError(
                f"Module {type(self).__name__} has not been initialized: run a forward pass to materialise its lazy "
                "parameters before apply(), or use lazy_apply(module, fn) to run fn after the first forward"
            )
        for module in self.children():
            module.apply(fn)
        fn(self)
        return self


def _infer_with_kwargs(module: nn.Module, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    module.initialize_parameters(*args, **kwargs)
    if module.has_uninitialized_params():
        raise RuntimeError(f"module {type(module).__name__} has not been fully initialized after "
                           "initialize_parameters()")
    module._initialize_hook.remove()
    module._load_hook.remove()
    delattr(module, "_initialize_hook")
    delattr(module, "_load_hook")
    if module.cls_to_become is not None:
        module.__class__ = module.cls_to_become


def lazy_apply(module: nn.Module, fn: Callable[[nn.Module], None]) -> nn.Module:
    """Run ``module.apply(fn)`` right after the module's first forward pass; returns ``module``.

    Several calls queue several functions, applied in order. If the module has already run forward and
    holds no uninitialised parameter, ``fn`` is applied immediately.
    """
    if not callable(fn):
        raise TypeError(f"lazy_apply: fn must be callable, got {type(fn).__name__}")
    pending = getattr(module, "_functions_to_lazy_apply", None)
    if pending is None:
        pending = []
        module._functions_to_lazy_apply = pending  # type: ignore[assignment]

        def _after_first_forward(mod: nn.Module, _inp: Any, _out: Any) -> None:
            funcs = mod._functions_to_lazy_apply
            for f in funcs:
                mod.apply(f)
            del mod._functions_to_lazy_apply
            handle.remove()

        handle = module.register_forward_hook(_after_first_forward)
    pending.append(fn)
    return module
