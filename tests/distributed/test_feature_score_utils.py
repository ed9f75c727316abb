"""feature_score_utils and utils.modify_input_for_feature_processor against hand-computed weights."""

import pytest
import torch
from torch import nn

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.feature_score_utils import (
    create_sharding_type_to_feature_score_mapping,
    may_collect_feature_scores,
)
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.distributed.utils import modify_input_for_feature_processor
from recsys_lib.modules.embedding_configs import (
    EmbeddingTableConfig,
    FeatureScoreBasedEvictionPolicy,
    TimestampBasedEvictionPolicy,
)
from recsys_lib.modules.feature_processor_ import PositionWeightedModule, PositionWeightedModuleCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _table(name, features, policy):
    return EmbeddingTableConfig(num_embeddings=10, embedding_dim=4, name=name, feature_names=features,
                                use_virtual_table=True, virtual_table_eviction_policy=policy)


def _info(config, sharding_type):
    return EmbeddingShardingInfo(config, ParameterSharding(sharding_type, "key_value"), torch.empty(0))


def test_mapping_scores_defaults_ttl_and_replicated():
    auto = dict(enable_auto_feature_score_collection=True)
    t0 = _table("t0", ["a", "b"], FeatureScoreBasedEvictionPolicy(feature_score_mapping={"a": 2.0},
                                                                  feature_score_default_value=0.5, **auto))
    t1 = _table("t1", ["c"], FeatureScoreBasedEvictionPolicy(eviction_ttl_mins=5, **auto))
    infos = {"row_wise": [_info(t0, "row_wise"), _info(t1, "row_wise")], "data_parallel": [_info(t0, "data_parallel")]}
    accumulate, collect, mapping = create_sharding_type_to_feature_score_mapping([t0, t1], infos)
    assert (accumulate, collect) == (True, True)
    assert mapping == {"row_wise": {"a": 2.0, "b": 0.5, "c": 0.0}, "data_parallel": {}}

    kjts = [KeyedJaggedTensor(keys=["a", "c", "b"], values=torch.arange(6), lengths=torch.tensor([2, 0, 1, 1, 1, 1])),
            KeyedJaggedTensor(keys=["a"], values=torch.arange(2), lengths=torch.tensor([1, 1]))]
    out = may_collect_feature_scores(kjts, True, mapping)
    # a: 2 ids → 2.0, c: 2 ids → 0.0, b: 2 ids → 0.5; the data-parallel KJT keeps no weights
    assert out[0].weights().tolist() == [2.0, 2.0, 0.0, 0.0, 0.5, 0.5]
    assert out[1].weights_or_none() is None
    with pytest.raises(ValueError, match="already has weights"):
        may_collect_feature_scores(kjts[:1], True, mapping)


def test_mapping_off_and_inconsistent_policies():
    manual = _table("t0", ["a"], FeatureScoreBasedEvictionPolicy())
    assert create_sharding_type_to_feature_score_mapping([manual], {}) == (True, False, {})
    other = _table("t1", ["b"], TimestampBasedEvictionPolicy())
    with pytest.raises(ValueError, match=r"must; these do not: \['t1'\]"):
        create_sharding_type_to_feature_score_mapping([manual, other], {})
    no_default = _table("t2", ["z"], FeatureScoreBasedEvictionPolicy(enable_auto_feature_score_collection=True))
    with pytest.raises(ValueError, match="feature 'z' is not in feature_score_mapping"):
        create_sharding_type_to_feature_score_mapping([no_default], {"row_wise": [_info(no_default, "row_wise")]})
    kjt = KeyedJaggedTensor(keys=["a"], values=torch.arange(2), lengths=torch.tensor([2]))
    assert may_collect_feature_scores([kjt], False, {})[0].weights_or_none() is None


def test_modify_input_for_feature_processor_positions():
    # bags: a = [0 1] [2], b = [3 4 5] [6]; positions in bag: 0 1 0 | 0 1 2 0
    def kjt():
        return KeyedJaggedTensor(keys=["a", "b"], values=torch.arange(7), lengths=torch.tensor([2, 1, 3, 1]))

    per_feature = kjt()
    modify_input_for_feature_processor(per_feature, nn.ModuleDict({"a": PositionWeightedModule(5)}), False)
    assert per_feature.weights().tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]  # b has no processor: ones
    collection = kjt()
    modify_input_for_feature_processor(collection, PositionWeightedModuleCollection({"a": 5, "b": 5}), True)
    assert collection.weights().tolist() == [0.0, 1.0, 0.0, 0.0, 1.0, 2.0, 0.0]
