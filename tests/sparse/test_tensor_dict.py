"""maybe_td_to_kjt: KJTs pass through; a TensorDict of jagged nested tensors becomes the equivalent KJT."""

import sys
import types

import torch

from recsys_lib.sparse.tensor_dict import maybe_td_to_kjt
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class _TensorDict(dict):
    """Stand-in for tensordict.TensorDict (the package is optional and absent from the test environment)."""


def _jagged(bags):
    return torch.nested.nested_tensor([torch.tensor(b, dtype=torch.int64) for b in bags], layout=torch.jagged)


def test_kjt_passes_through():
    kjt = KeyedJaggedTensor(["a"], torch.arange(3), lengths=torch.tensor([1, 2]))
    assert maybe_td_to_kjt(kjt) is kjt


def test_tensor_dict_becomes_kjt(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensordict", types.SimpleNamespace(TensorDict=_TensorDict))
    td = _TensorDict(f1=_jagged([[1, 2], [3]]), f2=_jagged([[4], [5, 6, 7]]))
    kjt = maybe_td_to_kjt(td, keys=["f2", "f1"])
    assert kjt.keys() == ["f2", "f1"]
    assert kjt.lengths().tolist() == [1, 3, 2, 1]
    assert kjt.values().tolist() == [4, 5, 6, 7, 1, 2, 3]
    assert maybe_td_to_kjt(td).keys() == ["f1", "f2"]
