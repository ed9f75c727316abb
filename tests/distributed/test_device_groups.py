"""embeddingbag / embedding module-level helpers: device groups of plan entries, meta placements, infos grouped by
(sharding type, device group). References: the placements written in each test."""

import pytest
import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed import embedding, embeddingbag
from recsys_lib.distributed.embeddingbag import get_device_from_parameter_sharding, replace_placement_with_meta_device
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection


def _ps(sharding_type, placements, rows=8, dim=4):
    n = len(placements)
    spec = EnumerableShardingSpec(
        [ShardMetadata([i * rows // n, 0], [rows // n, dim], p) for i, p in enumerate(placements)]
    )
    return ParameterSharding(sharding_type, "dense", ranks=list(range(n)), sharding_spec=spec)


def test_device_of_parameter_sharding():
    assert get_device_from_parameter_sharding(_ps("row_wise", ["rank:0/cpu", "rank:1/cpu"])) == "cpu"
    mixed = _ps("row_wise", ["rank:0/cuda:0", "rank:1/cpu"])
    assert get_device_from_parameter_sharding(mixed) == ("cuda", "cpu")
    with pytest.raises(ValueError, match="only row_wise"):
        get_device_from_parameter_sharding(_ps("column_wise", ["rank:0/cuda:0", "rank:1/cpu"]))
    with pytest.raises(ValueError, match="EnumerableShardingSpec"):
        get_device_from_parameter_sharding(ParameterSharding("data_parallel", "dense", ranks=[0]))


def _plan():
    return {
        "t0": _ps("table_wise", ["rank:1/cpu"]),
        "t1": _ps("row_wise", ["rank:0/cuda:0", "rank:1/cpu"]),
        "t2": _ps("table_wise", ["rank:0/cpu"]),
        "t3": _ps("row_wise", ["rank:0/cpu", "rank:1/cpu"]),
    }


def test_ebc_infos_grouped_by_type_and_device():
    ebc = EmbeddingBagCollection(
        tables=[EmbeddingBagConfig(num_embeddings=8, embedding_dim=4, name=f"t{i}", feature_names=[f"f{i}"])
                for i in range(4)]
    )
    out = embeddingbag.create_sharding_infos_by_sharding_device_group(ebc, _plan(), "", {"learning_rate": 0.1})
    assert {k: [i.embedding_config.name for i in v] for k, v in out.items()} == {
        ("table_wise", "cpu"): ["t0", "t2"],
        ("row_wise", ("cuda", "cpu")): ["t1"],
        ("row_wise", "cpu"): ["t3"],
    }
    assert list(out) == [("table_wise", "cpu"), ("row_wise", ("cuda", "cpu")), ("row_wise", "cpu")]
    info = out[("table_wise", "cpu")][0]
    assert info.param is ebc.embedding_bags["t0"].weight and info.fused_params == {"learning_rate": 0.1}
    assert info.embedding_config.embedding_names == ["f0"]


def test_ec_infos_grouped_and_plan_checked():
    ec = EmbeddingCollection(
        tables=[EmbeddingConfig(num_embeddings=8, embedding_dim=4, name=f"t{i}", feature_names=[f"f{i}"])
                for i in range(4)]
    )
    out = embedding.create_sharding_infos_by_sharding_device_group(ec, _plan(), None)
    assert [len(v) for v in out.values()] == [2, 1, 1]
    plan = _plan()
    del plan["t3"]
    with pytest.raises(ValueError, match="t3"):
        embedding.create_sharding_infos_by_sharding_device_group(ec, plan, None)


def test_replace_placement_with_meta_device():
    ebc = EmbeddingBagCollection(
        tables=[EmbeddingBagConfig(num_embeddings=8, embedding_dim=4, name=f"t{i}", feature_names=[f"f{i}"])
                for i in range(4)]
    )
    out = embeddingbag.create_sharding_infos_by_sharding_device_group(ebc, _plan(), "", None)
    infos = [i for v in out.values() for i in v]
    replace_placement_with_meta_device(infos)
    for info in infos:
        for shard in info.param_sharding.sharding_spec.shards:
            assert shard.placement.device() == torch.device("meta")
    assert [s.placement.rank() for s in infos[2].param_sharding.sharding_spec.shards] == [0, 1]  # ranks kept


def test_ec_index_dedup_switch_reaches_new_sharded_ecs():
    assert embedding.get_ec_index_dedup() is False
    embedding.set_ec_index_dedup(True)
    try:
        assert embedding.get_ec_index_dedup() is True
    finally:
        embedding.set_ec_index_dedup(False)
    assert embedding.get_ec_index_dedup() is False
