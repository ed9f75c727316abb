"""Pure parts of inference sharding (T0, no process group): splitting a KJT per rank, plan columns."""

import pytest
import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib import KeyedJaggedTensor
from recsys_lib.distributed._infer.build import logical_parameter_sharding
from recsys_lib.distributed._infer.dist import split_for_ranks, sum_row_shards
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig


def test_row_split_of_the_docstring_example():
    # feature f, rows [0, 6) on rank 0 and [6, 12) on rank 1; bags | 3 7 | 11 |
    kjt = KeyedJaggedTensor.from_lengths_sync(["f"], torch.tensor([3, 7, 11]), torch.tensor([2, 1]),
                                              weights=torch.tensor([0.5, 1.5, 2.5]))
    kjts, pos = split_for_ranks(kjt, [["f"], ["f"]], [[0], [6]], [[6], [12]], True, {"f": 12}, {"f": "t"})
    assert kjts[0].values().tolist() == [3] and kjts[0].lengths().tolist() == [1, 0]
    assert kjts[1].values().tolist() == [1, 5] and kjts[1].lengths().tolist() == [1, 1]
    assert kjts[1].weights().tolist() == [1.5, 2.5]
    assert [p.tolist() for p in pos[0]] == [[0]] and [p.tolist() for p in pos[1]] == [[1, 2]]
    with pytest.raises(ValueError, match="'t'.*12"):
        split_for_ranks(KeyedJaggedTensor.from_lengths_sync(["f"], torch.tensor([12]), torch.tensor([1])),
                        [["f"]], [[0]], [[12]], True, {"f": 12}, {"f": "t"})


def test_feature_split_keeps_ids_and_repeats_features():
    kjt = KeyedJaggedTensor.from_lengths_sync(["b", "a"], torch.tensor([1, 2, 3]), torch.tensor([1, 0, 1, 1]))
    kjts, pos = split_for_ranks(kjt, [["a"], ["a", "b"]], [[0], [0, 0]], [[9], [9, 9]], False, {}, {})
    assert kjts[0].keys() == ["a"] and kjts[0].values().tolist() == [2, 3]
    assert kjts[1].keys() == ["a", "b"] and kjts[1].values().tolist() == [2, 3, 1]
    assert kjts[1].lengths().tolist() == [1, 1, 1, 0] and pos == [[], []]


def test_sum_row_shards_adds_into_columns():
    a, b = torch.ones(2, 2), torch.full((2, 1), 2.0)
    out = sum_row_shards([a, b], torch.tensor([0, 2, 2]), [0, 2, 3], 3)
    assert out.tolist() == [[1.0, 0.0, 3.0], [1.0, 0.0, 3.0]]


def _cw(widths, offsets):
    shards = [ShardMetadata([0, o], [10, w], f"rank:{r}/cpu") for r, (o, w) in enumerate(zip(offsets, widths))]
    return ParameterSharding("column_wise", "quant", list(range(len(widths))), EnumerableShardingSpec(shards))


def test_plan_in_weight_bytes_is_rescaled_to_embedding_columns():
    cfg = EmbeddingBagConfig(num_embeddings=10, embedding_dim=8, name="t", feature_names=["f"])
    out = logical_parameter_sharding(cfg, _cw([8, 8], [0, 8]), plan_cols=16)  # INT8 rows: 16 bytes
    assert [list(md.shard_sizes) for md in out.sharding_spec.shards] == [[10, 4], [10, 4]]
    assert [list(md.shard_offsets) for md in out.sharding_spec.shards] == [[0, 0], [0, 4]]
    same = _cw([4, 4], [0, 4])
    assert logical_parameter_sharding(cfg, same, plan_cols=16) is same  # already in embedding columns
    with pytest.raises(ValueError, match="'t'.*whole columns"):
        logical_parameter_sharding(cfg, _cw([3, 13], [0, 3]), plan_cols=16)


def test_registry_names_the_inference_shardings():
    import importlib

    from recsys_lib.distributed.sharding.strategy import quant_inference_sharding_types, strategy_for

    for st in quant_inference_sharding_types():  # TW, RW, CW
        s = strategy_for(st)
        for name in (s.infer_pooled_class, s.infer_sequence_class):
            assert name is not None
            cls = getattr(importlib.import_module(f"recsys_lib.distributed.sharding.{s.folder}"), name)
            assert cls.__module__.startswith("recsys_lib.distributed.sharding.") and cls.row_split == s.pools_partial_sums
    with pytest.raises(ValueError, match="quantized inference: data_parallel"):
        strategy_for("data_parallel").create_infer_pooled([], None)
