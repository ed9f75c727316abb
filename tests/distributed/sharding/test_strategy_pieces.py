"""Pure pieces of the DP/TW/CW/TWCW strategies (no process group): column permutation, row recombination,
sequence split sizes, placement checks."""

import pytest
import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.cw_sharding.pooled import check_column_shards, combine_permute
from recsys_lib.distributed.sharding.cw_sharding.sequence import combine_rows
from recsys_lib.distributed.sharding.tw_sharding.sequence import sequence_splits, uniform_dim
from recsys_lib.distributed.sharding.twcw_sharding.pooled import check_one_host
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig


def test_combine_permute_puts_shard_columns_back_in_order() -> None:
    # a2a order: f (cols 4-8) from rank 0, g (8 wide) from rank 0, f (cols 0-4) from rank 1
    names, dims, index = combine_permute([("f", 4, 4), ("g", 0, 8), ("f", 0, 4)])
    assert names == ["f", "g"] and dims == [8, 8]
    assert index == [12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    # against an explicit tensor: columns labelled by (feature, global column)
    a2a = torch.tensor([[10 + 4, 10 + 5, 10 + 6, 10 + 7] + [20 + c for c in range(8)] + [10 + c for c in range(4)]])
    assert a2a.index_select(1, torch.tensor(index)).tolist() == [[10 + c for c in range(8)] + [20 + c for c in range(8)]]


def test_combine_rows_rebuilds_rows_from_shard_blocks() -> None:
    # received blocks: f cols 2-4 (2 ids), g cols 0-2 (1 id) from rank 0; f cols 0-2, g cols 2-4 from rank 1
    rows = torch.tensor([[3.0, 4.0], [7.0, 8.0], [10.0, 11.0], [1.0, 2.0], [5.0, 6.0], [12.0, 13.0]])
    out = combine_rows(rows, [2, 1, 2, 1], [("f", 2, 2), ("g", 0, 2), ("f", 0, 2), ("g", 2, 2)])
    assert out.tolist() == [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [10.0, 11.0, 12.0, 13.0]]


def test_sequence_splits() -> None:
    # this rank owns 2 features; batch 2 per rank (W=2): lengths [f0: r0 r0 r1 r1 | f1: r0 r0 r1 r1]
    lengths = torch.tensor([1, 2, 0, 3, 4, 0, 1, 1])
    # before the input dist this rank had features [x (rank 0), y, z (rank 1)] with 5, 2, 1 ids
    inp, out = sequence_splits(lengths, 2, [2, 2], [5, 2, 1], [1, 2])
    assert inp == [1 + 2 + 4 + 0, 0 + 3 + 1 + 1]
    assert out == [5, 3]
    assert sequence_splits(torch.empty(0, dtype=torch.long), 0, [2, 2], [4], [1, 0]) == ([0, 0], [4, 0])


def test_uniform_dim_rejects_mixed_widths() -> None:
    assert uniform_dim([4, 4], "x") == 4
    with pytest.raises(ValueError, match="one embedding width"):
        uniform_dim([4, 8], "x")


def _info(name, rows, cols, shards):
    cfg = EmbeddingTableConfig(num_embeddings=rows, embedding_dim=cols, name=name, feature_names=["f"])
    spec = EnumerableShardingSpec([ShardMetadata(o, s, f"rank:{r}/cpu") for o, s, r in shards])
    return EmbeddingShardingInfo(cfg, ParameterSharding("column_wise", "fused", sharding_spec=spec), torch.empty(0))


def test_column_and_host_checks() -> None:
    check_column_shards([_info("t", 10, 8, [([0, 0], [10, 4], 0), ([0, 4], [10, 4], 1)])], "column-wise")
    with pytest.raises(ValueError, match="all 10 rows"):
        check_column_shards([_info("t", 10, 8, [([0, 0], [5, 8], 0), ([5, 0], [5, 8], 1)])], "column-wise")
    check_one_host([_info("t", 10, 8, [([0, 0], [10, 4], 2), ([0, 4], [10, 4], 3)])], 2)
    with pytest.raises(ValueError, match="one host"):
        check_one_host([_info("t", 10, 8, [([0, 0], [10, 4], 1), ([0, 4], [10, 4], 2)])], 2)
