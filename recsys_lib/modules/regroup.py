"""``KTRegroupAsDict``: regroup the pooled outputs of several ``KeyedTensor`` s into named dense tensors.

    kt1 keys [a(2), b(1)]   kt2 keys [c(3)]   groups [["c", "a"], ["b"]]   keys ["x", "y"]
    -> {"x": cat(c, a) (B, 5), "y": b (B, 1)}

The column plan (which input, which columns) is pure Python over the keys (microseconds), so it is rebuilt
per call: the module stays stateless, TorchScript-compatible and one node under ``torch.fx``.
"""

from typing import Dict, List, Optional

import torch
from torch import nn

from recsys_lib.ops.regroup import plan_regroup, regroup_slices
from recsys_lib.sparse.jagged_tensor import KeyedTensor
from recsys_lib.types import DataType


@torch.fx.wrap
def kt_regroup_as_dict(
    keyed_tensors: List[KeyedTensor],
    groups: List[List[str]],
    keys: List[str],
    dtype: Optional[torch.dtype],
    multi_device: bool,
) -> Dict[str, torch.Tensor]:
    """``{keys[i]: cat(columns of groups[i] along dim 1)}`` over ``keyed_tensors``."""
    if len(keyed_tensors) == 0:
        raise ValueError("KTRegroupAsDict: expected at least one KeyedTensor")
    kt_keys: List[List[str]] = []
    kt_lengths: List[List[int]] = []
    values: List[torch.Tensor] = []
    for kt in keyed_tensors:
        if kt.key_dim() != 1:
            raise ValueError("KTRegroupAsDict: only key_dim=1 is supported, got " + str(kt.key_dim()))
        kt_keys.append(kt.keys())
        kt_lengths.append(kt.length_per_key())
        values.append(kt.values())
    if multi_device:
        target = values[0].device
        for i in range(len(values)):
            values[i] = values[i].to(target)
    outs = regroup_slices(values, plan_regroup(kt_keys, kt_lengths, groups))
    result: Dict[str, torch.Tensor] = {}
    for i, k in enumerate(keys):
        result[k] = outs[i] if dtype is None else outs[i].to(dtype)
    return result


class KTRegroupAsDict(nn.Module):
    """Regroup ``List[KeyedTensor]`` into ``{keys[i]: cat(columns of groups[i])}``.

    Args:
        groups: key lists, one per output.
        keys: output names, one per group.
        emb_dtype: cast outputs to this dtype (``None``: keep).
        multi_device: inputs may live on different devices; outputs land on the first input's device.
    """

    def __init__(
        self,
        groups: List[List[str]],
        keys: List[str],
        emb_dtype: Optional[DataType] = None,
        multi_device: bool = False,
    ) -> None:
        super().__init__()
        if len(groups) != len(keys):
            raise ValueError(f"KTRegroupAsDict: {len(keys)} keys for {len(groups)} groups; need one key per group")
        if len(set(keys)) != len(keys):
            raise ValueError(f"KTRegroupAsDict: output keys must be unique, got {keys}")
        for i, g in enumerate(groups):
            if len(g) == 0:
                raise ValueError(f"KTRegroupAsDict: group {i} ({keys[i]!r}) is empty")
        self._groups: List[List[str]] = [list(g) for g in groups]
        self._keys: List[str] = list(keys)
        self._emb_dtype: Optional[torch.dtype] = None
        if emb_dtype is not None:
            from recsys_lib.modules.embedding_configs import data_type_to_dtype

            self._emb_dtype = data_type_to_dtype(emb_dtype)
        self._multi_device: bool = bool(multi_device)

    def forward(self, keyed_tensors: List[KeyedTensor]) -> Dict[str, torch.Tensor]:
        return kt_regroup_as_dict(keyed_tensors, self._groups, self._keys, self._emb_dtype, self._multi_device)
