from recsys_lib.distributed.sharding.cw_sharding import layout as cw
from recsys_lib.distributed.sharding.twcw_sharding import layout


def test_same_blocks_as_column_wise_on_one_host():
    assert layout.shard_sizes_and_offsets(4, 300, 4, 2) == cw.shard_sizes_and_offsets(4, 300, 4, 2)
    assert layout.shard_ranks(3, host_index=1, local_world_size=2) == [2, 3, 2]
