import torch

from recsys_lib.modules.feature_processor import PositionWeightedModule, PositionWeightedProcessor
from recsys_lib.sparse.jagged_tensor import JaggedTensor
from tests.modules._batches import make_kjt


def test_legacy_position_weighted_module_on_dict():
    pw = PositionWeightedModule({"a": 3})
    assert list(pw.state_dict()) == ["position_weights.a"]
    with torch.no_grad():
        pw.position_weights["a"].copy_(torch.tensor([0.5, 1.5, 2.5]))
    a = JaggedTensor(values=torch.tensor([4, 5, 6]), lengths=torch.tensor([1, 2]))
    b = JaggedTensor(values=torch.tensor([9]), lengths=torch.tensor([1, 0]))
    out = pw({"a": a, "b": b})
    assert out["a"].weights().tolist() == [0.5, 0.5, 1.5]
    assert out["b"] is b


def test_position_weighted_processor_on_kjt():
    proc = PositionWeightedProcessor({"x": 2})
    with torch.no_grad():
        proc.position_weights["x"].copy_(torch.tensor([3.0, 4.0]))
    kjt = make_kjt({"y": [[1, 2, 3], []], "x": [[7, 8], [9]]})
    out = proc(kjt)
    assert out.keys() == ["y", "x"]
    assert out.weights().tolist() == [1.0, 1.0, 1.0, 3.0, 4.0, 3.0]
    assert out.stride() == 2 and torch.equal(out.values(), kjt.values())
