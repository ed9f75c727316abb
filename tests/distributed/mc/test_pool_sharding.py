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


def test_replicated_row_wise_kjt_pool_two_hosts():
    """4 ranks = 2 hosts x 2: every rank's lookups equal a plain dict reference; both hosts hold the same rows."""
    from recsys_lib.distributed.test_utils import run_multiprocess
    from tests.distributed.mc._replicated_pool_cases import POOL, replicated_kjt_pool_case

    results = run_multiprocess(replicated_kjt_pool_case, 4, local_world_size=2)
    assert [r["local_pool_size"] for r in results] == [5, 4, 5, 4]
    for rank, res in enumerate(results):
        offset = 0 if rank % 2 == 0 else 5
        assert {k: v[1] for k, v in res["shapes"].items()} == {k: [(offset, 0)] for k in res["shapes"]}
        assert all(v[0][0] == POOL for v in res["shapes"].values())
    gathered = results[0]["all_local"]
    assert sorted(gathered[0]) == ["key_lengths", "values", "weights"]
    for local_rank in (0, 1):  # host 0's shard == host 1's shard
        host0, host1 = gathered[local_rank], gathered[2 + local_rank]
        for key in host0:
            assert torch.equal(host0[key], host1[key]), (local_rank, key)
