import pytest
import torch

from recsys_lib.modules.feature_processor_ import (
    PositionWeightedModule,
    PositionWeightedModuleCollection,
    positions_in_bags,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor
from tests.modules._batches import make_kjt


def test_positions_in_bags():
    assert positions_in_bags(torch.tensor([0, 2, 2, 5]), 5).tolist() == [0, 1, 0, 1, 2]
    assert positions_in_bags(torch.tensor([0]), 0).tolist() == []


def test_position_weighted_module_on_jt():
    pw = PositionWeightedModule(max_feature_length=4)
    assert list(pw.state_dict()) == ["position_weight"] and (pw.position_weight == 1).all()
    with torch.no_grad():
        pw.position_weight.copy_(torch.tensor([10.0, 20.0, 30.0, 40.0]))
    jt = JaggedTensor(values=torch.tensor([7, 8, 9, 1, 2]), lengths=torch.tensor([2, 0, 3]))
    out = pw(jt)
    assert out.weights().tolist() == [10.0, 20.0, 10.0, 20.0, 30.0]
    assert out.values().tolist() == [7, 8, 9, 1, 2] and out.lengths().tolist() == [2, 0, 3]
    out.weights().sum().backward()
    assert pw.position_weight.grad.tolist() == [2.0, 2.0, 1.0, 0.0]


def test_bag_longer_than_max_length_raises():
    pw = PositionWeightedModule(max_feature_length=2)
    with pytest.raises(ValueError, match="3 ids but max_feature_length is 2"):
        pw(JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([3])))
    with pytest.raises(ValueError, match="positive"):
        PositionWeightedModule(max_feature_length=0)


def test_collection_weights_per_feature_and_ones_elsewhere():
    coll = PositionWeightedModuleCollection({"a": 3, "b": 2})
    assert sorted(coll.state_dict()) == ["position_weights.a", "position_weights.b"]
    with torch.no_grad():
        coll.position_weights["a"].copy_(torch.tensor([1.0, 2.0, 3.0]))
        coll.position_weights["b"].copy_(torch.tensor([5.0, 6.0]))
    kjt = make_kjt({"b": [[1, 2], [3]], "c": [[4], []], "a": [[], [5, 6, 7]]})
    out = coll(kjt)
    assert out.keys() == ["b", "c", "a"]
    assert out.weights().tolist() == [5.0, 6.0, 5.0, 1.0, 1.0, 2.0, 3.0]
    assert torch.equal(out.values(), kjt.values()) and torch.equal(out.lengths(), kjt.lengths())
    with pytest.raises(ValueError, match="feature 'b'"):
        coll(make_kjt({"b": [[1, 2, 3]]}))
    with pytest.raises(ValueError, match="non-empty"):
        PositionWeightedModuleCollection({})
