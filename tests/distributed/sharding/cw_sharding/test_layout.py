import pytest

from recsys_lib.distributed.sharding.cw_sharding import layout
from tests.distributed.sharding._tiling import coverage


@pytest.mark.parametrize(
    "cols,shard_dim,widths",
    # TorchRec 1.8.0's blocks: the smallest multiple of 4 >= the shard dim dividing the columns, else one block
    [(256, None, [128, 128]), (300, None, [300]), (64, None, [64]), (12, 4, [4, 4, 4]), (14, 4, [14]),
     (8, 3, [4, 4]), (10, 4, [10]), (24, 5, [8, 8, 8]), (512, 0, [128] * 4), (384, 100, [128] * 3)],
)
def test_equal_blocks_of_the_base_width(cols, shard_dim, widths):
    sizes, offsets = layout.shard_sizes_and_offsets(5, cols, 2, 2, col_wise_shard_dim=shard_dim)
    assert [s[1] for s in sizes] == widths
    assert all(s[0] == 5 for s in sizes)
    assert bool((coverage(5, cols, sizes, offsets) == 1).all())


def test_even_and_explicit_splits():
    assert layout.even_column_split(12, 3) == [4, 4, 4]
    with pytest.raises(ValueError, match="embedding dim 10 is not divisible by the number of shards 3"):
        layout.even_column_split(10, 3)
    assert layout.explicit_column_split(10, [4, 6]) == [4, 6]
    with pytest.raises(ValueError, match="sum to 10"):
        layout.explicit_column_split(10, [4, 4])
    assert layout.widths_to_layout(3, [4, 6]) == ([[3, 4], [3, 6]], [[0, 0], [0, 4]])


def test_output_permute_restores_column_order():
    # three column blocks on ranks [1, 0, 1] with dims [4, 4, 2]: the a2a output is rank 0's block 1, then
    # rank 1's blocks 0 and 2 -> block 0 sits at position 1, block 1 at 0, block 2 at 2
    permute, dims = layout.output_permute([1, 0, 1], [4, 4, 2], 2)
    assert permute == [1, 0, 2] and dims == [4, 4, 2]
