"""Optimizers whose ``state_dict`` is keyed by parameter FQN (fully qualified name).

``KeyedOptimizer.state_dict()`` looks like::

    {"state": {"dense.0.weight": {"exp_avg": tensor, "step": tensor}, ...},
     "param_groups": [{"params": ["dense.0.bias", "dense.0.weight"], "lr": 0.1, ...}]}  # only if saved

The FQN keys make checkpoints independent of parameter order and of how many optimizers hold the
parameters; ``load_state_dict`` copies *into* the existing state tensors (ShardedTensor shards included),
so a sharded model loads its own rows without re-allocating.
"""

from typing import Any, Callable, Collection, Dict, List, Mapping, Optional, Set, Tuple, Union

import torch
from torch import optim
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.optim._base import init_optimizer_hooks, keyed_load_state_dict, keyed_state_dict
from recsys_lib.optim._state import load_state_value


class KeyedOptimizer(optim.Optimizer):
    """An optimizer over named parameters; checkpoints are keyed by name.

    Args:
        params: ``{fqn: parameter}`` (tensor or ShardedTensor).
        state: ``{parameter: {state_name: value}}`` (may fill lazily as the optimizer steps).
        param_groups: torch-style groups whose ``"params"`` are parameters from ``params``.

    Example::

        kopt = KeyedOptimizerWrapper(dict(model.named_parameters()), lambda p: torch.optim.Adam(p))
        kopt.init_state()                         # materialise Adam's lazy state
        torch.save(kopt.state_dict(), "opt.pt")   # {"state": {"fc.weight": {...}, ...}}
    """

    def __init__(
        self,
        params: Mapping[str, Union[torch.Tensor, ShardedTensor]],
        state: Mapping[Any, Any],
        param_groups: Collection[Mapping[str, Any]],
    ) -> None:
        if not isinstance(params, Mapping):
            raise TypeError(f"{type(self).__name__}: params must be a mapping fqn -> tensor, got {type(params).__name__}")
        known = set()
        for key, p in params.items():
            if not isinstance(key, str):
                raise TypeError(f"{type(self).__name__}: parameter keys must be str, got {key!r}")
            if not isinstance(p, torch.Tensor):
                raise TypeError(f"{type(self).__name__}: params[{key!r}] must be a tensor, got {type(p).__name__}")
            known.add(id(p))
        for i, group in enumerate(param_groups):
            if not isinstance(group, Mapping) or "params" not in group:
                raise ValueError(f"{type(self).__name__}: param_groups[{i}] must be a mapping with a 'params' entry")
            for p in group["params"]:
                if id(p) not in known:
                    raise ValueError(
                        f"{type(self).__name__}: param_groups[{i}] holds a parameter of shape "
                        f"{list(p.shape)} that is not among the named params"
                    )
        init_optimizer_hooks(self)
        self.state = state  # type: ignore[assignment]
        self.param_groups = param_groups  # type: ignore[assignment]
        self._params = params

    @property
    def params(self) -> Mapping[str, Union[torch.Tensor, ShardedTensor]]:
        """``{fqn: parameter}`` this optimizer updates (assignable, as TorchRec's plain attribute)."""
        return self._params

    @params.setter
    def params(self, value: Mapping[str, Union[torch.Tensor, ShardedTensor]]) -> None:
        self._params = value

    def state_dict(self) -> Dict[str, Any]:  # type: ignore[override]
        """Returns ``{"state": {fqn: {name: value}}}`` (+ ``"param_groups"`` if ``save_param_groups(True)``).

        Runs :meth:`pre_state_dict` first."""
        self.pre_state_dict()
        return keyed_state_dict(self.params, self.state, self.param_groups, self.defaults["_save_param_groups"])

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        """Loads a state dict written by :meth:`state_dict` in place, then calls :meth:`post_load_state_dict`.

        The optimizer's state must already exist (call :meth:`init_state` for lazy optimizers); tensors are
        copied into it, ShardedTensors shard by shard (or from an unsharded tensor, by shard offsets).
        """
        keyed_load_state_dict(
            self.params, self.state, self.param_groups, self.defaults["_save_param_groups"], state_dict, type(self).__name__
        )
        self.post_load_state_dict()

    def post_load_state_dict(self) -> None:
        """Hook run after :meth:`load_state_dict` (e.g. to refresh cached hyper-parameters)."""

    def pre_state_dict(self) -> None:
        """Hook run at the start of :meth:`state_dict` (e.g. to refresh state kept in a checkpoint-only form).

        May be collective (sharded modules): call ``state_dict()`` on every rank of the process group."""

    def save_param_groups(self, save: bool) -> None:
        """Whether :meth:`state_dict` also writes (and :meth:`load_state_dict` reads) ``"param_groups"``."""
        self.defaults["_save_param_groups"] = bool(save)

    def add_param_group(self, param_group: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__}: adding parameter groups is not supported")

    def init_state(self, sparse_grad_parameter_names: Optional[Set[str]] = None) -> None:
        """Materialises lazily-created state: sets zero gradients and runs one ``step()``.

        Parameters named in ``sparse_grad_parameter_names`` get sparse zero gradients (as an embedding
        with ``sparse=True`` would produce). Gradients are left at zero afterwards. Note that a step with
        zero gradients still applies weight decay and advances step counters, as in TorchRec.
        """
        names = set(sparse_grad_parameter_names or ())
        unknown = sorted(names - set(self.params))
        if unknown:
            raise ValueError(f"{type(self).__name__}.init_state: unknown sparse parameter names {unknown}")
        for key, param in self.params.items():
            if not param.requires_grad:
                continue
            zero = torch.zeros_like(param)
            param.grad = zero.to_sparse() if key in names else zero
        self.step(closure=None)


class CombinedOptimizer(KeyedOptimizer):
    """Several keyed optimizers behind one interface; parameter keys get an optional per-optimizer prefix.

    Args:
        optims: ``KeyedOptimizer`` s or ``(prefix, KeyedOptimizer)`` pairs; ``prefix + "." + fqn`` becomes the
            key (see :meth:`prepend_opt_key`). Keys must be unique across the children.

    Example::

        opt = CombinedOptimizer([("sparse", fused_opt), dense_opt])
        opt.step()           # steps every child
        opt.state_dict()     # {"state": {"sparse.t0.weight": {...}, "fc.weight": {...}}}
    """

    def __init__(self, optims: List[Union[KeyedOptimizer, Tuple[str, KeyedOptimizer]]]) -> None:
        if not isinstance(optims, (list, tuple)):
            raise TypeError(f"CombinedOptimizer: optims must be a list, got {type(optims).__name__}")
        self._optims: List[Tuple[str, KeyedOptimizer]] = []
        for i, item in enumerate(optims):
            if isinstance(item, KeyedOptimizer):
                self._optims.append(("", item))
            elif (
                isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], KeyedOptimizer)
            ):
                self._optims.append((item[0], item[1]))
            else:
                raise TypeError(
                    f"CombinedOptimizer: optims[{i}] must be a KeyedOptimizer or (str, KeyedOptimizer), got {item!r:.80}"
                )
        seen: Dict[str, str] = {}
        for opt_key, opt in self._optims:
            for name in opt.params:
                key = self.prepend_opt_key(name, opt_key)
                if key in seen:
                    raise ValueError(f"CombinedOptimizer: duplicate parameter key {key!r}; give the optimizers prefixes")
                seen[key] = opt_key
        init_optimizer_hooks(self)

    @staticmethod
    def prepend_opt_key(name: str, opt_key: str) -> str:
        """``opt_key`` if ``name`` is empty, else ``opt_key + "." + name`` (no dot when ``opt_key`` is empty)."""
        if not name:
            return opt_key
        return opt_key + ("." if opt_key else "") + name

    @property
    def optimizers(self) -> List[Tuple[str, KeyedOptimizer]]:
        return self._optims

    @property
    def param_groups(self) -> List[Dict[str, Any]]:  # type: ignore[override]
        return [group for _, opt in self._optims for group in opt.param_groups]

    @property
    def params(self) -> Mapping[str, Union[torch.Tensor, ShardedTensor]]:
        return {
            self.prepend_opt_key(name, opt_key): p for opt_key, opt in self._optims for name, p in opt.params.items()
        }

    @property
    def state(self) -> Dict[Any, Any]:  # type: ignore[override]
        return {p: s for _, opt in self._optims for p, s in opt.state.items()}

    def post_load_state_dict(self) -> None:
        for _, opt in self._optims:
            opt.post_load_state_dict()

    def pre_state_dict(self) -> None:
        for _, opt in self._optims:
            opt.pre_state_dict()

    def save_param_groups(self, save: bool) -> None:
        self.defaults["_save_param_groups"] = bool(save)
        for _, opt in self._optims:
            opt.save_param_groups(save)

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        for _, opt in self._optims:
            opt.step(closure=closure)

    def zero_grad(self, set_to_none: bool = False) -> None:
        for _, opt in self._optims:
            opt.zero_grad(set_to_none=set_to_none)

    def set_optimizer_step(self, step: int) -> None:
        for _, opt in self._optims:
            if hasattr(opt, "set_optimizer_step"):
                opt.set_optimizer_step(step)

    def update_hyper_parameters(self, params_dict: Dict[str, Any]) -> None:
        for _, opt in self._optims:
            if hasattr(opt, "update_hyper_parameters"):
                opt.update_hyper_parameters(params_dict)


class KeyedOptimizerWrapper(KeyedOptimizer):
    """Makes any ``torch.optim.Optimizer`` a :class:`KeyedOptimizer`.

    Args:
        params: ``{fqn: parameter}``, e.g. ``dict(in_backward_optimizer_filter(model.named_parameters()))``.
        optim_factory: builds the optimizer from ``list(params.values())`` — or, with ``pass_params_dict``,
            from the named list ``list(params.items())`` (torch optimizers accept named parameters).
        pass_params_dict: see ``optim_factory``.

    Example::

        opt = KeyedOptimizerWrapper(dict(model.named_parameters()), lambda p: torch.optim.SGD(p, lr=0.1))
    """

    def __init__(
        self,
        params: Mapping[str, Union[torch.Tensor, ShardedTensor]],
        optim_factory: Callable[[List[Union[torch.Tensor, ShardedTensor]]], optim.Optimizer],
        pass_params_dict: bool = False,
    ) -> None:
        if not callable(optim_factory):
            raise TypeError(f"KeyedOptimizerWrapper: optim_factory must be callable, got {type(optim_factory).__name__}")
        if not isinstance(params, Mapping):
            raise TypeError(f"KeyedOptimizerWrapper: params must be a mapping fqn -> tensor, got {type(params).__name__}")
        inner = optim_factory(list(params.items()) if pass_params_dict else list(params.values()))  # type: ignore[arg-type]
        if not isinstance(inner, optim.Optimizer):
            raise TypeError(
                f"KeyedOptimizerWrapper: optim_factory must return a torch.optim.Optimizer, got {type(inner).__name__}"
            )
        self._optimizer = inner
        super().__init__(params, inner.state, inner.param_groups)

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Optional[Any] = None) -> Optional[Any]:  # type: ignore[override]
        return self._optimizer.step(closure=closure)

    def set_optimizer_step(self, step: int) -> None:
        """Forwards to the wrapped optimizer if it has ``set_optimizer_step`` (torch optimizers do not)."""
        if hasattr(self._optimizer, "set_optimizer_step"):
            self._optimizer.set_optimizer_step(step)  # type: ignore[attr-defined]

    def update_hyper_parameters(self, params_dict: Dict[str, Any]) -> None:
        """Forwards if the wrapped optimizer has it; otherwise sets each key in every param group.

        Raises ``ValueError`` for a key no param group has (rather than silently ignoring it).
        """
        if hasattr(self._optimizer, "update_hyper_parameters"):
            self._optimizer.update_hyper_parameters(params_dict)  # type: ignore[attr-defined]
            return
        for key, value in params_dict.items():
            if not all(key in g for g in self.param_groups):
                raise ValueError(f"update_hyper_parameters: {key!r} is not a hyper-parameter of {type(self._optimizer).__name__}")
            for g in self.param_groups:
                g[key] = value



class OptimizerWrapper(KeyedOptimizer):
    """Base of wrappers that add behaviour around a :class:`KeyedOptimizer` (warmup, clipping).

    Everything is forwarded to the wrapped optimizer. A subclass may own extra named state (the warmup
    iteration counter) through :meth:`_add_owned_state`; it then appears in ``params``/``state`` and in
    ``state_dict()["state"]`` under its name, and is restored by ``load_state_dict``.
    """

    def __init__(self, optimizer: KeyedOptimizer) -> None:
        if not isinstance(optimizer, KeyedOptimizer):
            raise TypeError(f"{type(self).__name__}: optimizer must be a KeyedOptimizer, got {type(optimizer).__name__}")
        self._optimizer = optimizer
        self._owned_params: Dict[str, torch.Tensor] = {}
        self._owned_state: Dict[torch.Tensor, Dict[str, Any]] = {}
        init_optimizer_hooks(self)

    def _add_owned_state(self, name: str, state: Dict[str, Any]) -> torch.Tensor:
        if name in self._optimizer.params or name in self._owned_params:
            raise ValueError(f"{type(self).__name__}: parameter name {name!r} is already in use")
        key = torch.nn.Parameter(torch.empty(0), requires_grad=False)  # stands for the state's "parameter"
        self._owned_params[name] = key
        self._owned_state[key] = state
        return key

    @property
    def params(self) -> Mapping[str, Union[torch.Tensor, ShardedTensor]]:
        return {**self._optimizer.params, **self._owned_params}

    @property
    def state(self) -> Dict[Any, Any]:  # type: ignore[override]
        return {**self._optimizer.state, **self._owned_state}

    @property
    def param_groups(self) -> Collection[Mapping[str, Any]]:  # type: ignore[override]
        return self._optimizer.param_groups

    def zero_grad(self, set_to_none: bool = False) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Optional[Any] = None) -> None:  # type: ignore[override]
        self._optimizer.step(closure=closure)

    def init_state(self, sparse_grad_parameter_names: Optional[Set[str]] = None) -> None:
        # Materialise the inner state without running this wrapper's step (no warmup tick, no clipping).
        self._optimizer.init_state(sparse_grad_parameter_names)

    def add_param_group(self, param_group: Any) -> None:
        self._optimizer.add_param_group(param_group)

    def state_dict(self) -> Dict[str, Any]:  # type: ignore[override]
        result = self._optimizer.state_dict()
        for name, key in self._owned_params.items():
            result["state"][name] = dict(self._owned_state[key])
        return result

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:  # type: ignore[override]
        if not isinstance(state_dict, Mapping) or "state" not in state_dict:
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected a mapping with a 'state' entry")
        inner_state = dict(state_dict["state"])
        for name, key in self._owned_params.items():
            if name not in inner_state:
                raise ValueError(f"{type(self).__name__}.load_state_dict: checkpoint has no state for {name!r}")
            mine, theirs = self._owned_state[key], inner_state.pop(name)
            for k in list(mine):
                if k not in theirs:
                    raise ValueError(f"{type(self).__name__}.load_state_dict: {name!r} lacks state {k!r}")
                mine[k] = load_state_value(mine[k], theirs[k], f"{name}/{k}")
        self._optimizer.load_state_dict({**state_dict, "state": inner_state})
        self.post_load_state_dict()

    def post_load_state_dict(self) -> None:
        # Runs after the inner load (which already ran the inner hook): hooks must be idempotent.
        self._optimizer.post_load_state_dict()

    def save_param_groups(self, save: bool) -> None:
        self.defaults["_save_param_groups"] = bool(save)
        self._optimizer.save_param_groups(save)

    def set_optimizer_step(self, step: int) -> None:
        if hasattr(self._optimizer, "set_optimizer_step"):
            self._optimizer.set_optimizer_step(step)

    def update_hyper_parameters(self, params_dict: Dict[str, Any]) -> None:
        if hasattr(self._optimizer, "update_hyper_parameters"):
            self._optimizer.update_hyper_parameters(params_dict)
