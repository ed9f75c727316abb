import pytest
import torch
from torch import nn

from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.modules.embedding_tower import EmbeddingTower, EmbeddingTowerCollection, tower_input_params
from tests.modules._batches import make_kjt, pool


class _Values(nn.Module):
    def forward(self, kt):
        return kt.values() * 2


def test_tower_collection_routes_features_and_concatenates():
    torch.manual_seed(0)
    ebc_a = EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=9, embedding_dim=4, name="ta",
                                                       feature_names=["a"])])
    ebc_w = EmbeddingBagCollection([EmbeddingBagConfig(num_embeddings=9, embedding_dim=2, name="tw",
                                                       feature_names=["w"])], is_weighted=True)
    assert tower_input_params(ebc_a) == (True, False) and tower_input_params(ebc_w) == (False, True)
    coll = EmbeddingTowerCollection([EmbeddingTower(ebc_a, _Values()), EmbeddingTower(ebc_w, _Values())])
    feats = make_kjt({"b": [[1], [2]], "a": [[3, 4], []]})
    weighted = make_kjt({"w": [[5], [6, 7]]}, weights={"w": [[0.5], [1.0, 2.0]]})
    out = coll(feats, weighted)
    ref_a = pool(ebc_a.embedding_bags["ta"].weight, [[3, 4], []]) * 2
    ref_w = pool(ebc_w.embedding_bags["tw"].weight, [[5], [6, 7]], "sum", [[0.5], [1.0, 2.0]]) * 2
    torch.testing.assert_close(out, torch.cat([ref_a, ref_w], 1))
    with pytest.raises(ValueError, match="weighted features"):
        coll(feats, None)
