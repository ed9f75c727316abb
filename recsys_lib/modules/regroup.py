"""``KTRegroupAsDict``: regroup the pooled outputs of several ``KeyedTensor`` s into named dense tensors.

    kt1 keys [a(2), b(1)]   kt2 keys [c(3)]   groups [["c", "a"], ["b"]]   keys ["x", "y"]
    -> {"x": cat(c, a) (B, 5), "y": b (B, 1)}

The column plan (which input, which columns) is computed on the first call and reused; later calls check the
inputs still have the same keys and widths.
"""

from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.ops.regroup import plan_regroup, regroup_slices
from recsys_lib.sparse.jagged_tensor import KeyedTensor
from recsys_lib.types import DataType


class KTRegroupAsDict(nn.Module):
    """Regroup ``List[KeyedTensor]`` into ``{keys[i]: cat(columns of groups[i])}``.

    Args:
        groups: key lists, one per output.
        keys: output names, one per group.
        emb_dtype: cast outputs to this dtype (``None``: keep).
        multi_device: accepted for TorchRec compatibility (inputs may live on different devices; outputs
            land on the first input's device).
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
        self._groups = [list(g) for g in groups]
        self._keys = list(keys)
        self._emb_dtype: Optional[torch.dtype] = None
        if emb_dtype is not None:
            from recsys_lib.modules.embedding_configs import data_type_to_dtype

            self._emb_dtype = data_type_to_dtype(emb_dtype)
        self._multi_device = multi_device
        self._signature: Optional[Tuple[Tuple[Tuple[str, ...], Tuple[int, ...]], ...]] = None
        self._plan: List[List[Tuple[int, int, int]]] = []

    def forward(self, keyed_tensors: List[KeyedTensor]) -> Dict[str, torch.Tensor]:
        if len(keyed_tensors) == 0:
            raise ValueError("KTRegroupAsDict: expected at least one KeyedTensor")
        signature = tuple((tuple(kt.keys()), tuple(kt.length_per_key())) for kt in keyed_tensors)
        if signature != self._signature:
            for kt in keyed_tensors:
                if kt.key_dim() != 1:
                    raise ValueError(f"KTRegroupAsDict: only key_dim=1 is supported, got {kt.key_dim()}")
            self._plan = plan_regroup([kt.keys() for kt in keyed_tensors],
                                      [kt.length_per_key() for kt in keyed_tensors], self._groups)
            self._signature = signature
        values = [kt.values() for kt in keyed_tensors]
        if self._multi_device:
            values = [v.to(values[0].device) for v in values]
        outs = regroup_slices(values, self._plan)
        if self._emb_dtype is not None:
            outs = [o.to(self._emb_dtype) for o in outs]
        return dict(zip(self._keys, outs))
