import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys_lib.distributed.sharding.rw_sharding import layout
from tests.distributed.sharding._tiling import coverage


@pytest.mark.parametrize(
    "rows,world,sizes,offsets",
    [(10, 4, [3, 3, 3, 1], [0, 3, 6, 9]), (5, 4, [2, 2, 1, 0], [0, 2, 4, 5]), (8, 2, [4, 4], [0, 4]),
     (1, 3, [1, 0, 0], [0, 1, 1])],
)
def test_documented_row_blocks(rows, world, sizes, offsets):
    got_sizes, got_offsets = layout.shard_sizes_and_offsets(rows, 3, world, world)
    assert [s[0] for s in got_sizes] == sizes
    assert [o[0] for o in got_offsets] == offsets


@settings(derandomize=True, max_examples=60)
@given(rows=st.integers(0, 40), world=st.integers(1, 8))
def test_blocks_tile_the_table(rows, world):
    sizes, offsets = layout.shard_sizes_and_offsets(rows, 2, world, 1)
    assert len(sizes) == world
    assert bool((coverage(rows, 2, sizes, offsets) == 1).all())
    # block size ceil(rows / world): every shard but the partial/empty tail is full
    b = layout.block_size(rows, world)
    assert all(s[0] in (b, 0) for s in sizes[:-1] if s[0] != rows - b * (rows // b))


def test_memory_proportional_and_bucketed():
    sizes, _ = layout.shard_sizes_and_offsets(100, 2, 3, 3, device_memory_sizes=[1, 1, 2])
    assert [s[0] for s in sizes] == [25, 25, 50]
    sizes, offsets = layout.shard_sizes_and_offsets(12, 2, 2, 2, num_buckets=6)
    assert [s[0] for s in sizes] == [6, 6] and [o[0] for o in offsets] == [0, 6]
    with pytest.raises(ValueError, match="divide the number of rows"):
        layout.shard_sizes_and_offsets(10, 2, 2, 2, num_buckets=3)


@pytest.mark.parametrize(
    "rows,world,buckets,sizes",
    # whole buckets: num_buckets // W each, the remainder one by one on the first ranks (TorchRec 1.8.0's
    # placement, so a checkpoint written by TorchRec lands on the same ranks)
    [(5, 4, 5, [2, 1, 1, 1]), (10, 4, 5, [4, 2, 2, 2]), (6, 4, 6, [2, 2, 1, 1]), (14, 4, 7, [4, 4, 4, 2]),
     (12, 4, 4, [3, 3, 3, 3])],
)
def test_bucketed_rows_spread_the_remainder_over_the_first_ranks(rows, world, buckets, sizes):
    got, offsets = layout.shard_sizes_and_offsets(rows, 2, world, world, num_buckets=buckets)
    assert [s[0] for s in got] == sizes
    assert [o[0] for o in offsets] == [sum(sizes[:i]) for i in range(world)]
    # num_buckets=0 means no buckets (plain ceil blocks)
    plain, _ = layout.shard_sizes_and_offsets(rows, 2, world, world, num_buckets=0)
    assert plain == layout.shard_sizes_and_offsets(rows, 2, world, world)[0]


def test_fewer_buckets_than_ranks_is_an_error():
    with pytest.raises(ValueError, match="Number of buckets \\(2\\) must be >= the number of ranks \\(4\\)"):
        layout.shard_sizes_and_offsets(10, 2, 4, 4, num_buckets=2)


def test_bucketize_maps_ids_to_rank_and_local_row():
    shard, local = layout.bucketize(torch.tensor([0, 2, 3, 9]), block=3, num_shards=4)
    assert shard.tolist() == [0, 0, 1, 3] and local.tolist() == [0, 2, 0, 0]
    with pytest.raises(ValueError, match=r"ids must be in \[0, 12\)"):
        layout.bucketize(torch.tensor([12]), block=3, num_shards=4)
