import pytest
import torch

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.feature_processor_ import PositionWeightedModule, PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from tests.modules._batches import make_kjt, pool

BATCH = {"f0": [[1, 2, 3], [], [4]], "f1": [[5], [6, 7], [0]]}


def _ebc(weighted=True):
    torch.manual_seed(0)
    return EmbeddingBagCollection(
        [EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="t0", feature_names=["f0"]),
         EmbeddingBagConfig(num_embeddings=10, embedding_dim=8, name="t1", feature_names=["f1"])],
        is_weighted=weighted,
    )


def _expected(ebc, pos_f0):
    w0, w1 = ebc.embedding_bags["t0"].weight, ebc.embedding_bags["t1"].weight
    bag_w = [[pos_f0[i] for i in range(len(b))] for b in BATCH["f0"]]
    return torch.cat([pool(w0, BATCH["f0"], "sum", bag_w), pool(w1, BATCH["f1"])], 1)


@pytest.mark.parametrize("as_collection", [True, False])
def test_fp_ebc_matches_position_weighted_pooling(as_collection):
    ebc = _ebc()
    pos = [2.0, 3.0, 4.0]
    if as_collection:
        fps = PositionWeightedModuleCollection({"f0": 3})
        with torch.no_grad():
            fps.position_weights["f0"].copy_(torch.tensor(pos))
        keys = ["_embedding_bag_collection.embedding_bags.t0.weight",
                "_embedding_bag_collection.embedding_bags.t1.weight", "_feature_processors.position_weights.f0"]
    else:
        fps = {"f0": PositionWeightedModule(3)}
        with torch.no_grad():
            fps["f0"].position_weight.copy_(torch.tensor(pos))
        keys = ["_embedding_bag_collection.embedding_bags.t0.weight",
                "_embedding_bag_collection.embedding_bags.t1.weight", "_feature_processors.f0.position_weight"]
    fp_ebc = FeatureProcessedEmbeddingBagCollection(ebc, fps)
    assert sorted(fp_ebc.state_dict()) == sorted(keys)
    out = fp_ebc(make_kjt(BATCH, ["f1", "f0"]))
    torch.testing.assert_close(out.values(), _expected(ebc, pos))
    out.values().sum().backward()
    pw = fps.position_weights["f0"] if as_collection else fps["f0"].position_weight
    # d/dw_i of the sum = sum over bags of the row-sums of the id at position i
    w0 = ebc.embedding_bags["t0"].weight.detach()
    expected_grad = torch.stack([w0[1].sum() + w0[4].sum(), w0[2].sum(), w0[3].sum()])
    torch.testing.assert_close(pw.grad, expected_grad)
    assert fp_ebc.is_weighted()
    assert fp_ebc.split()[1] is ebc


def test_fp_ebc_validation():
    with pytest.raises(ValueError, match="is_weighted=True"):
        FeatureProcessedEmbeddingBagCollection(_ebc(weighted=False), {"f0": PositionWeightedModule(3)})
    with pytest.raises(ValueError, match=r"\['zz'\]"):
        FeatureProcessedEmbeddingBagCollection(_ebc(), {"zz": PositionWeightedModule(3)})
    with pytest.raises(TypeError, match="feature_processors"):
        FeatureProcessedEmbeddingBagCollection(_ebc(), [PositionWeightedModule(3)])
