"""Table-row-wise and grid sharding vs the unsharded EBC on gloo, with one and two ranks per simulated host
(``LOCAL_WORLD_SIZE`` 1 and 2), plus their pure key/batch orderings (T0).

With L=2, W=2 every table lives on one host (row-wise inside it); with L=1, W=2 each "host" is one rank, so
the intra-host reduce-scatter is trivial and the cross-host all-to-all does the work; W=4, L=2 (slow) has both.
"""

import pytest

from recsys_lib.distributed.sharding.twrw_sharding.pooled import rank_major_key_order, staggered_batch_sizes
from tests.distributed._row_split_cases import Case, check, register


def test_rank_major_key_order_documented_example():
    # hosts with [2, 1] features, 2 ranks per host: bucket-major keys [b0: a b c | b1: a b c]
    assert rank_major_key_order([2, 1], 2) == [0, 1, 3, 4, 2, 5]
    assert rank_major_key_order([1, 1], 1) == [0, 1]


def test_staggered_batch_sizes():
    assert staggered_batch_sizes([1, 2, 3, 4], 2) == [[1, 3], [2, 4]]


_W = ((2, 2), (2, 1), (4, 2))
CASES = [
    Case("twrw_ebc_sum_fused", sharding="table_row_wise", worlds=_W),
    Case("twrw_ebc_mix_dense", sharding="table_row_wise", pooling="MIX", kernel="dense", worlds=_W),
    Case("twrw_ebc_weighted_fused", sharding="table_row_wise", weighted=True, worlds=_W),
    Case("grid_ebc_sum_fused", sharding="grid_shard", worlds=_W),
    Case("grid_ebc_mean_fused", sharding="grid_shard", pooling="MEAN", worlds=_W),
    Case("grid_ebc_weighted_dense", sharding="grid_shard", weighted=True, kernel="dense", worlds=_W),
]
register(*CASES)
WORLDS = [
    pytest.param(2, 2, id="w2l2"),
    pytest.param(2, 1, id="w2l1"),
    pytest.param(4, 2, id="w4l2", marks=pytest.mark.slow),
]


@pytest.mark.dist
@pytest.mark.parametrize("world,local", WORLDS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_two_level_equals_unsharded(case, world, local):
    check(case, world, local)
