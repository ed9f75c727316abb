import pytest

from recsys_lib.distributed.sharding.twrw_sharding import layout


def test_rows_over_the_ranks_of_one_host():
    assert layout.shard_sizes_and_offsets(10, 4, world_size=4, local_world_size=2) == (
        [[5, 4], [5, 4]], [[0, 0], [5, 0]])
    assert layout.shard_ranks(1, local_world_size=2, world_size=4) == [2, 3]
    with pytest.raises(ValueError, match="host_index 2 out of range"):
        layout.shard_ranks(2, local_world_size=2, world_size=4)
