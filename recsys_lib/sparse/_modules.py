"""Tiny modules converting between a KJT and a dict of JTs (scriptable; used around traced graphs)."""

from typing import Dict

import torch

from recsys_lib.sparse._jagged import JaggedTensor
from recsys_lib.sparse._keyed_jagged import KeyedJaggedTensor


class ComputeKJTToJTDict(torch.nn.Module):
    """``kjt -> kjt.to_dict()``.

    Example::

        ComputeKJTToJTDict()(kjt)["f1"].values()
    """

    def forward(self, keyed_jagged_tensor: KeyedJaggedTensor) -> Dict[str, JaggedTensor]:
        return keyed_jagged_tensor.to_dict()


class ComputeJTDictToKJT(torch.nn.Module):
    """``jt_dict -> KeyedJaggedTensor.from_jt_dict(jt_dict)``."""

    def forward(self, jt_dict: Dict[str, JaggedTensor]) -> KeyedJaggedTensor:
        return KeyedJaggedTensor.from_jt_dict(jt_dict)
