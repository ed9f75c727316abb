from recsys_lib.distributed.sharding.grid_sharding import layout
from tests.distributed.sharding._tiling import coverage


def test_documented_grid():
    sizes, offsets = layout.host_grid(10, 8, [0, 1], world_size=4, local_world_size=2)
    assert sizes == [[5, 4]] * 4
    assert offsets == [[0, 0], [5, 0], [0, 4], [5, 4]]
    assert layout.shard_ranks([0, 1], 2, 4) == [0, 1, 2, 3]
    assert bool((coverage(10, 8, sizes, offsets) == 1).all())


def test_planner_grid_uses_column_blocks():
    sizes, offsets = layout.shard_sizes_and_offsets(7, 256, world_size=4, local_world_size=2)
    # columns [128, 128] (column-wise rule), rows [4, 3] within the host
    assert sizes == [[4, 128], [3, 128], [4, 128], [3, 128]]
    assert offsets == [[0, 0], [4, 0], [0, 128], [4, 128]]
    assert bool((coverage(7, 256, sizes, offsets) == 1).all())
    # 300 columns: no multiple of 4 in [128, 300) divides them, so one column block (TorchRec's rule)
    sizes, offsets = layout.shard_sizes_and_offsets(7, 300, world_size=4, local_world_size=2)
    assert sizes == [[4, 300], [3, 300]] and offsets == [[0, 0], [4, 0]]
