import pytest

from recsys_lib.distributed.sharding.tw_sharding import layout


def test_one_shard_is_the_table():
    assert layout.shard_sizes_and_offsets(9, 4, 2, 2) == ([[9, 4]], [[0, 0]])


def test_routing_by_rank():
    # tables t0..t3 with 1, 2, 1, 1 features and dims 4, 8, 2, 6; placed on ranks 1, 0, 1, 0
    per_rank = layout.tables_per_rank([1, 0, 1, 0], 2)
    assert per_rank == [[1, 3], [0, 2]]
    nf, dims = [1, 2, 1, 1], [4, 8, 2, 6]
    assert layout.features_per_rank(per_rank, nf) == [3, 2]
    assert layout.dim_sum_per_rank(per_rank, nf, dims) == [2 * 8 + 6, 4 + 2]
    # input features in table order: t0:[0], t1:[1, 2], t2:[3], t3:[4] -> rank 0 gets t1, t3; rank 1 t0, t2
    assert layout.feature_order(per_rank, nf) == [1, 2, 4, 0, 3]


def test_rank_outside_world_is_rejected():
    with pytest.raises(ValueError, match="rank 2, outside the world of size 2"):
        layout.tables_per_rank([0, 2], 2)
