import pytest
import torch

from recsys_lib.modules.embedding_configs import DataType
from recsys_lib.modules.regroup import KTRegroupAsDict
from recsys_lib.sparse.jagged_tensor import KeyedTensor


def _kts():
    a, b, c = torch.randn(3, 2), torch.randn(3, 1), torch.randn(3, 3)
    kt1 = KeyedTensor.from_tensor_list(["a", "b"], [a, b])
    kt2 = KeyedTensor.from_tensor_list(["c"], [c])
    return (a, b, c), [kt1, kt2]


def test_regroup_as_dict_matches_manual_cat():
    (a, b, c), kts = _kts()
    mod = KTRegroupAsDict(groups=[["c", "a"], ["b"], ["a", "b", "c"]], keys=["x", "y", "z"])
    out = mod(kts)
    torch.testing.assert_close(out["x"], torch.cat([c, a], 1))
    torch.testing.assert_close(out["y"], b)
    torch.testing.assert_close(out["z"], torch.cat([a, b, c], 1))
    (a2, b2, c2), kts2 = _kts()
    torch.testing.assert_close(mod(kts2)["x"], torch.cat([c2, a2], 1))  # same module, new values


def test_regroup_follows_input_layout_and_gradients_flow():
    (a, b, c), kts = _kts()
    mod = KTRegroupAsDict(groups=[["b", "c"]], keys=["x"])
    mod(kts)
    swapped = [kts[1], KeyedTensor.from_tensor_list(["b", "a"], [b, a])]
    torch.testing.assert_close(mod(swapped)["x"], torch.cat([b, c], 1))
    leaf = torch.randn(3, 2, requires_grad=True)
    mod2 = KTRegroupAsDict(groups=[["a"]], keys=["x"], emb_dtype=DataType.FP16)
    out = mod2([KeyedTensor.from_tensor_list(["a"], [leaf])])["x"]
    assert out.dtype == torch.float16
    out.float().sum().backward()
    assert (leaf.grad == 1).all()


def test_regroup_validation():
    with pytest.raises(ValueError, match="one key per group"):
        KTRegroupAsDict(groups=[["a"]], keys=["x", "y"])
    with pytest.raises(ValueError, match="'q'"):
        KTRegroupAsDict(groups=[["q"]], keys=["x"])(_kts()[1])


def test_regroup_scripts_and_traces():
    from recsys_lib.fx import symbolic_trace

    (a, b, c), kts = _kts()

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.r = KTRegroupAsDict(groups=[["c", "a"], ["b"]], keys=["x", "y"])

        def forward(self, kt1: KeyedTensor, kt2: KeyedTensor):
            return self.r([kt1, kt2])

    m = M()
    for variant in (torch.jit.script(m), symbolic_trace(m)):
        out = variant(*kts)
        torch.testing.assert_close(out["x"], torch.cat([c, a], 1))
        torch.testing.assert_close(out["y"], b)
