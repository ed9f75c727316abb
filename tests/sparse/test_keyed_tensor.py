"""KeyedTensor and regrouping: golden values and a plain-torch reference (column slicing by hand)."""

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import KeyedTensor, permute_multi_embedding, regroup_kts


def test_golden_from_tensor_list():
    kt = KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1), 2 * torch.ones(2, 2)])
    assert kt.length_per_key() == [1, 2] and kt.offset_per_key() == [0, 1, 3]
    assert kt["b"].tolist() == [[2, 2], [2, 2]] and kt["a"].tolist() == [[1], [1]]
    assert kt.values().shape == (2, 3) and kt.key_dim() == 1 and kt.keys() == ["a", "b"]
    d = kt.to_dict()
    assert list(d) == ["a", "b"] and torch.equal(d["b"], kt["b"])


def _two_kts():
    torch.manual_seed(0)
    kt1 = KeyedTensor.from_tensor_list(["a", "b"], [torch.randn(3, 2), torch.randn(3, 1)])
    kt2 = KeyedTensor.from_tensor_list(["c", "d"], [torch.randn(3, 3), torch.randn(3, 4)])
    return kt1, kt2


def test_golden_regroup():
    kt1, kt2 = _two_kts()
    out = KeyedTensor.regroup([kt1, kt2], [["c", "a"], ["b"]])
    torch.testing.assert_close(out[0], torch.cat([kt2["c"], kt1["a"]], dim=1))
    torch.testing.assert_close(out[1], kt1["b"])


@pytest.mark.parametrize("fn", [KeyedTensor.regroup, regroup_kts, permute_multi_embedding])
def test_regroup_variants_match_manual_slicing(fn):
    kt1, kt2 = _two_kts()
    groups = [["d", "a", "b"], ["c"], ["a", "d"]]
    out = fn([kt1, kt2], groups)
    lookup = {**kt1.to_dict(), **kt2.to_dict()}
    for g, t in zip(groups, out):
        torch.testing.assert_close(t, torch.cat([lookup[k] for k in g], dim=1))


def test_regroup_as_dict_and_backward():
    kt1, kt2 = _two_kts()
    v1 = kt1.values().clone().requires_grad_()
    kt1 = KeyedTensor(["a", "b"], [2, 1], v1)
    out = KeyedTensor.regroup_as_dict([kt1, kt2], [["b", "c"], ["a"]], keys=["x", "y"])
    assert list(out) == ["x", "y"] and out["x"].shape == (3, 4) and out["y"].shape == (3, 2)
    (out["x"].sum() * 2 + out["y"].sum()).backward()
    expected = torch.tensor([[1.0, 1.0, 2.0]] * 3)
    torch.testing.assert_close(v1.grad, expected)
