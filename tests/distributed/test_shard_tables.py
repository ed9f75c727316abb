"""Plan entries → table shards per rank (pure, no process group)."""

import pytest
import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._sharded.shard_tables import check_shards, replicated_tables, shard_tables_per_rank
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding._placement import RankPlacement, output_segments
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from tests.distributed._sharding_helpers import param_sharding


def _info(name, rows, cols, feats, ps, pooling=PoolingType.SUM):
    cfg = EmbeddingTableConfig(num_embeddings=rows, embedding_dim=cols, name=name, feature_names=feats,
                               embedding_names=feats, pooling=pooling)
    return EmbeddingShardingInfo(cfg, ps, torch.empty(0))


def test_column_shards_land_on_their_ranks_with_metadata() -> None:
    infos = [_info("t0", 10, 8, ["f0"], param_sharding("column_wise", 10, 8, [1, 0]))]
    per_rank = shard_tables_per_rank(infos, 2)
    assert [(t.name, t.local_rows, t.local_cols, list(t.local_metadata.shard_offsets)) for t in per_rank[0]] == [
        ("t0", 10, 4, [0, 4])]
    assert [list(t.local_metadata.shard_offsets) for t in per_rank[1]] == [[0, 0]]
    assert per_rank[0][0].global_metadata.size == torch.Size([10, 8])
    assert per_rank[0][0].compute_kernel.value == "fused"


def test_rank_outside_world_and_bad_tiling_raise() -> None:
    with pytest.raises(ValueError, match="rank 3.*world size is 2"):
        check_shards("t0", 10, 8, [ShardMetadata([0, 0], [10, 8], "rank:3/cpu")], 2)
    with pytest.raises(ValueError, match="tile the table exactly"):
        check_shards("t0", 10, 8, [ShardMetadata([0, 0], [10, 4], "rank:0/cpu")], 2)
    with pytest.raises(ValueError, match="outside the table"):
        check_shards("t0", 10, 8, [ShardMetadata([0, 4], [10, 8], "rank:0/cpu")], 2)
    with pytest.raises(ValueError, match="EnumerableShardingSpec"):
        shard_tables_per_rank([_info("t0", 10, 8, ["f0"], ParameterSharding("table_wise", "fused"))], 2)


def test_placement_orders_features_rank_major_in_kernel_order() -> None:
    # rank 0: t0 (SUM), t1 (MEAN), t2 (SUM) -> kernels [t0, t2], [t1]; rank 1: t3
    infos = [
        _info("t0", 5, 4, ["a", "b"], param_sharding("table_wise", 5, 4, [0])),
        _info("t1", 5, 4, ["c"], param_sharding("table_wise", 5, 4, [0]), PoolingType.MEAN),
        _info("t2", 5, 4, ["d"], param_sharding("table_wise", 5, 4, [0])),
        _info("t3", 5, 8, ["e"], param_sharding("table_wise", 5, 8, [1])),
    ]
    p = RankPlacement(infos, 2, 0)
    assert p.feature_names_per_rank() == [["a", "b", "d", "c"], ["e"]]
    assert p.dim_sum_per_rank() == [16, 8]
    assert output_segments(p) == [("a", 0, 4), ("b", 0, 4), ("d", 0, 4), ("c", 0, 4), ("e", 0, 8)]


def test_replicated_tables_have_no_placement() -> None:
    (t,) = replicated_tables([_info("t0", 6, 4, ["f"], ParameterSharding("data_parallel", "dense"))])
    assert (t.local_rows, t.local_cols, t.local_metadata, t.global_metadata) == (6, 4, None, None)
