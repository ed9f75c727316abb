"""Shared pieces of the keyed optimizers: torch-optimizer bookkeeping and the FQN-keyed state dict."""

import copy
from collections import OrderedDict
from typing import Any, Collection, Dict, List, Mapping

import torch
from torch import optim

from recsys_lib.optim._state import load_state_value


def init_optimizer_hooks(opt: optim.Optimizer) -> None:
    """Sets what ``torch.optim.Optimizer.__init__`` would, minus params: hook tables and defaults.

    Keyed optimizers take their state and groups from elsewhere, so they skip ``Optimizer.__init__``;
    this keeps ``register_step_pre_hook``/``zero_grad``/profiling working on them.
    """
    opt.defaults = {"_save_param_groups": False}
    opt._optimizer_step_pre_hooks = OrderedDict()
    opt._optimizer_step_post_hooks = OrderedDict()
    opt._optimizer_state_dict_pre_hooks = OrderedDict()
    opt._optimizer_state_dict_post_hooks = OrderedDict()
    opt._optimizer_load_state_dict_pre_hooks = OrderedDict()
    opt._optimizer_load_state_dict_post_hooks = OrderedDict()
    opt._patch_step_function()


def _param_to_key(params: Mapping[str, Any]) -> Dict[int, str]:
    return {id(p): key for key, p in params.items()}


def keyed_state_dict(
    params: Mapping[str, Any], state: Mapping[Any, Any], param_groups: Collection[Mapping[str, Any]], save_groups: bool
) -> Dict[str, Any]:
    """``{"state": {fqn: {name: value}}}`` plus sorted-FQN ``"param_groups"`` when ``save_groups``."""
    to_key = _param_to_key(params)
    out_state: Dict[str, Any] = {}
    for p, p_state in state.items():
        key = to_key.get(id(p))
        if key is None:
            shape = list(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
            raise ValueError(f"state_dict: optimizer state holds a parameter ({shape}) that has no name in params")
        out_state[key] = dict(p_state)
    result: Dict[str, Any] = {"state": out_state}
    if save_groups:
        groups: List[Dict[str, Any]] = []
        for group in param_groups:
            saved = {k: copy.deepcopy(v) for k, v in group.items() if k != "params"}
            saved["params"] = sorted(to_key[id(p)] for p in group["params"])
            groups.append(saved)
        result["param_groups"] = groups
    return result


def keyed_load_state_dict(
    params: Mapping[str, Any],
    state: Mapping[Any, Any],
    param_groups: Collection[Mapping[str, Any]],
    load_groups: bool,
    state_dict: Mapping[str, Any],
    owner: str,
) -> None:
    """In-place inverse of :func:`keyed_state_dict`; every mismatch is a ``ValueError`` naming the key."""
    if not isinstance(state_dict, Mapping) or "state" not in state_dict:
        raise ValueError(f"{owner}.load_state_dict: expected a mapping with a 'state' entry")
    new_state = state_dict["state"]
    if len(state) != len(new_state):
        raise ValueError(
            f"{owner}.load_state_dict: checkpoint has state for {len(new_state)} parameters, optimizer for "
            f"{len(state)} (call init_state() first if the optimizer creates its state lazily)"
        )
    unknown = sorted(set(new_state) - set(params))
    if unknown:
        raise ValueError(f"{owner}.load_state_dict: checkpoint state for unknown parameters {unknown}")
    # Two passes: every entry is checked before any state is copied, so a failed load changes nothing.
    for apply in (False, True):
        for key, p in params.items():
            if p not in state:
                continue
            if key not in new_state:
                raise ValueError(f"{owner}.load_state_dict: checkpoint has no state for parameter {key!r}")
            p_state, new_p_state = state[p], new_state[key]
            if set(p_state) != set(new_p_state):
                raise ValueError(
                    f"{owner}.load_state_dict: state names of {key!r} differ: optimizer {sorted(p_state)}, "
                    f"checkpoint {sorted(new_p_state)}"
                )
            for name in list(p_state):
                value = load_state_value(p_state[name], new_p_state[name], f"{key}/{name}", apply)
                if apply:
                    p_state[name] = value
    if not load_groups:
        return
    if "param_groups" not in state_dict:
        raise ValueError(f"{owner}.load_state_dict: save_param_groups(True) is set but the checkpoint has no param_groups")
    to_key = _param_to_key(params)
    by_keys = {tuple(sorted(to_key[id(p)] for p in g["params"])): g for g in param_groups}
    new_groups = state_dict["param_groups"]
    if len(new_groups) != len(by_keys):
        raise ValueError(f"{owner}.load_state_dict: checkpoint has {len(new_groups)} param groups, optimizer {len(by_keys)}")
    for new_group in new_groups:
        keys = tuple(sorted(new_group["params"]))
        if keys not in by_keys:
            raise ValueError(f"{owner}.load_state_dict: no param group holds exactly {list(keys)}")
        group = by_keys[keys]
        for k, v in new_group.items():
            if k != "params":
                group[k] = copy.deepcopy(v)  # type: ignore[index]
