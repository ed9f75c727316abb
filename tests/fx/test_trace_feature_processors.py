"""Feature processors and FP-EBC trace with recsys_lib.fx.symbolic_trace and give the eager result."""

import pytest
import torch

from recsys_lib.fx import symbolic_trace
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.feature_processor import PositionWeightedProcessor
from recsys_lib.modules.feature_processor_ import PositionWeightedModule, PositionWeightedModuleCollection
from recsys_lib.modules.fp_embedding_modules import FeatureProcessedEmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _kjt():
    return KeyedJaggedTensor.from_lengths_sync(["f0", "f1"], torch.tensor([1, 2, 3, 4, 5, 6]), torch.tensor([2, 1, 0, 3]))


def _ebc():
    torch.manual_seed(0)
    return EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=10, embedding_dim=4, name="t0",
                                                      feature_names=["f0", "f1"])], is_weighted=True)


def _randomised(m):
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand_like(p))
    return m


@pytest.mark.parametrize("make", [
    lambda: PositionWeightedModuleCollection({"f0": 4}),
    lambda: PositionWeightedProcessor({"f1": 4}),
    lambda: FeatureProcessedEmbeddingBagCollection(_ebc(), PositionWeightedModuleCollection({"f0": 4})),
    lambda: FeatureProcessedEmbeddingBagCollection(_ebc(), {"f0": PositionWeightedModule(4)}),
], ids=["pw_collection", "pw_processor", "fp_ebc_collection", "fp_ebc_dict"])
def test_traced_equals_eager(make):
    m = _randomised(make())
    traced = symbolic_trace(m)
    got, want = traced(_kjt()), m(_kjt())
    if isinstance(want, KeyedJaggedTensor):
        torch.testing.assert_close(got.weights(), want.weights())
        torch.testing.assert_close(got.values(), want.values())
    else:
        torch.testing.assert_close(got.values(), want.values())
    # the reference: weight of the i-th id of a bag is w[i] (1 for features without a processor)
    if isinstance(m, PositionWeightedModuleCollection):
        w = m.position_weights["f0"].detach()
        torch.testing.assert_close(want.weights(), torch.stack([w[0], w[1], w[0], 1.0 + 0 * w[0], 1.0 + 0 * w[0],
                                                                1.0 + 0 * w[0]]))


def test_collection_dict_follows_to():
    m = PositionWeightedModuleCollection({"f0": 4})
    m.to(torch.float64)
    assert m.position_weights_dict["f0"] is m.position_weights["f0"]
    assert m.position_weights_dict["f0"].dtype == torch.float64
