from recsys_lib.distributed.sharding.dp_sharding.layout import shard_sizes_and_offsets
from tests.distributed.sharding._tiling import coverage


def test_every_rank_holds_the_whole_table():
    sizes, offsets = shard_sizes_and_offsets(7, 4, world_size=3, local_world_size=3)
    assert sizes == [[7, 4]] * 3 and offsets == [[0, 0]] * 3
    assert bool((coverage(7, 4, sizes, offsets) == 3).all())
