"""``KeyedTensor.regroup`` and friends: pooled blocks of several KeyedTensors regrouped by key (the bodies behind
``KeyedTensor.regroup`` / ``regroup_as_dict`` and ``regroup_kts`` / ``permute_multi_embedding``)::

    kt0: a a | b        kt1: c c c         groups [[c, a], [b]]  ->  [c c c a a], [b]      # each (B, sum D)

The column slices are planned once on the host (``ops/regroup.plan_regroup``), then copied by ``regroup_slices``.
"""

from typing import Dict, List

import torch

from recsys_lib.ops.regroup import plan_regroup, regroup_slices
from recsys_lib.sparse.jagged_tensor import KeyedTensor


def regroup(keyed_tensors: List[KeyedTensor], groups: List[List[str]]) -> List[torch.Tensor]:
    if len(keyed_tensors) == 0:
        raise ValueError("regroup: expected at least one KeyedTensor")
    for kt in keyed_tensors:
        if kt.key_dim() != 1:
            raise ValueError(f"regroup: only key_dim=1 is supported, got key_dim={kt.key_dim()}")
    plan = plan_regroup([kt.keys() for kt in keyed_tensors], [kt.length_per_key() for kt in keyed_tensors], groups)
    return regroup_slices([kt.values() for kt in keyed_tensors], plan)


def regroup_as_dict(
    keyed_tensors: List[KeyedTensor], groups: List[List[str]], keys: List[str]
) -> Dict[str, torch.Tensor]:
    if len(keys) != len(groups):
        raise ValueError(f"regroup_as_dict: {len(keys)} keys for {len(groups)} groups")
    tensors = regroup(keyed_tensors, groups)
    out: Dict[str, torch.Tensor] = {}
    for i, k in enumerate(keys):
        out[k] = tensors[i]
    return out
