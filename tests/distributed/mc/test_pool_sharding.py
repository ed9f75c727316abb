"""Sharded pools (spawned cases in ``_pool_cases.py``) and the pure row-wise pool layout."""

import torch

from recsys_lib.distributed._pool.rows import bucketize_ids, local_pool_size, row_ranges


def test_row_layout_documented_table():
    assert row_ranges(10, 4) == ((0, 3), (3, 3), (6, 3), (9, 1))
    assert [local_pool_size(10, 4, r) for r in range(4)] == [3, 3, 3, 1]


def test_bucketize_keeps_order_within_owner():
    local, counts, unbucketize = bucketize_ids(torch.tensor([7, 1, 9, 2, 7]), 3, 4)
    assert counts.tolist() == [2, 0, 2, 1]
    # owner order: ids 1, 2 (rank 0), 7, 7 (rank 2), 9 (rank 3) as local slots
    assert local.tolist() == [1, 2, 1, 1, 0]
    assert unbucketize.tolist() == [2, 0, 4, 1, 3]


def test_sharded_pools_equal_unsharded(world2_results):
    for res in world2_results:
        pools = res["pools"]
        assert pools["tensor"] and pools["kjt"] and pools["kjt_weighted"]
        assert "ids must lie in [0, pool_size=11)" in pools["bad_ids"]
