"""Checks of a state dict against a (sharded) module *before* anything is copied.

A checkpoint entry is loadable when its (global) shape equals the module's. Without this check a table shard
takes the rows it needs from any tensor that is large enough, so a checkpoint with one row too many would load
silently. Dtypes are cast on copy, as ``nn.Module.load_state_dict`` does (``Tensor.copy_``).

* :func:`shape_errors` — ``nn.Module``-style "size mismatch" messages for every entry of a state dict whose
  shape differs from the expected one (keys missing on either side are the caller's business).
* :func:`expected_shapes` — ``{key: global shape}`` of a state dict as ``state_dict()`` returns it.
* :func:`check_before_load` — raises one ``RuntimeError`` listing every mismatch (and, if strict, missing and
  unexpected keys): the whole-model pre-check of ``DistributedModelParallel.load_state_dict``.
* :func:`dedupe_unexpected_keys` — a ``load_state_dict`` post hook: a key under a sharded module is reported
  once even when both the module and one of its children see it.
"""

from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import nn
from torch.distributed._shard.sharded_tensor import ShardedTensor


def global_shape(value: Any) -> Tuple[int, ...]:
    """The full shape of a state-dict value (a ``ShardedTensor`` 's global size)."""
    if isinstance(value, ShardedTensor):
        return tuple(value.metadata().size)
    return tuple(value.shape)


def shape_errors(expected: Mapping[str, Tuple[int, ...]], state_dict: Mapping[str, Any]) -> List[str]:
    """One message per key of ``expected`` present in ``state_dict`` with another shape or a non-tensor value.

    Args:
        expected: key → the module's global shape for that key.
        state_dict: the checkpoint (plain tensors or ``ShardedTensor`` s).

    Returns:
        messages naming the key and both shapes, in ``expected`` order (empty when every entry fits).
    """
    errors: List[str] = []
    for key, shape in expected.items():
        if key not in state_dict:
            continue
        value = state_dict[key]
        if not isinstance(value, (torch.Tensor, ShardedTensor)):
            errors.append(f"While copying the parameter named {key!r}, expected a tensor or ShardedTensor, "
                          f"got {type(value).__name__}")
            continue
        got = global_shape(value)
        if got != tuple(shape):
            errors.append(f"size mismatch for {key}: copying a param with shape {list(got)} from checkpoint, "
                          f"the shape in current model is {list(shape)}.")
    return errors


def expected_shapes(state: Mapping[str, Any]) -> Dict[str, Tuple[int, ...]]:
    """``{key: global shape}`` of a module's own ``state_dict()`` (non-tensor entries skipped)."""
    return {k: global_shape(v) for k, v in state.items() if isinstance(v, (torch.Tensor, ShardedTensor))}


def check_before_load(module: nn.Module, state_dict: Mapping[str, Any], owner: str, strict: bool) -> None:
    """Raises ``RuntimeError`` (``nn.Module``'s wording) listing every entry of ``state_dict`` whose shape differs
    from ``module.state_dict()`` and, if ``strict``, the missing and unexpected keys; nothing has been copied
    when it raises (``nn.Module`` copies the entries that fit before raising)."""
    own = module.state_dict()
    errors = []
    if strict:
        unexpected = [k for k in state_dict if k not in own]
        missing = [k for k in own if k not in state_dict]
        if unexpected:
            errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ". ")
        if missing:
            errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ")
    errors.extend(shape_errors(expected_shapes(own), state_dict))
    if errors:
        raise RuntimeError(f"Error(s) in loading state_dict for {owner}:\n\t" + "\n\t".join(errors))


def dedupe_unexpected_keys(module: nn.Module, incompatible_keys: Any) -> None:
    """``load_state_dict`` post hook: keeps the first occurrence of each unexpected key."""
    unexpected = incompatible_keys.unexpected_keys
    unexpected[:] = list(dict.fromkeys(unexpected))
