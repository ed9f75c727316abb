import os

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.test_utils import run_multiprocess


def _all_reduce_and_env(rank, world_size, scale):
    t = torch.full((3,), float(rank + 1)) * scale
    dist.all_reduce(t)
    return {"sum": t, "rank": dist.get_rank(), "local": int(os.environ["LOCAL_RANK"])}


def _fails_on_rank_one(rank, world_size):
    if rank == 1:
        raise ValueError("boom on rank one")
    return rank


def test_results_come_back_by_rank():
    out = run_multiprocess(_all_reduce_and_env, 2, 2.0, local_world_size=1)
    expected = torch.full((3,), (1.0 + 2.0) * 2.0)
    for r, res in enumerate(out):
        torch.testing.assert_close(res["sum"], expected)
        assert res["rank"] == r
        assert res["local"] == 0  # one rank per simulated host


def test_failure_names_the_rank():
    with pytest.raises(RuntimeError, match=r"rank 1[\s\S]*boom on rank one"):
        run_multiprocess(_fails_on_rank_one, 2)


def test_bad_local_world_size():
    with pytest.raises(ValueError, match="local_world_size"):
        run_multiprocess(_fails_on_rank_one, 2, local_world_size=3)


def _fails_while_peer_waits(rank, world_size):
    if rank == 1:
        raise ValueError("rank one gives up before the collective")
    t = torch.ones(1)
    dist.all_reduce(t)  # never completes: rank 1 is gone
    return t


def test_failure_does_not_hang_the_peers():
    import time

    start = time.monotonic()
    with pytest.raises(RuntimeError, match="rank one gives up"):
        run_multiprocess(_fails_while_peer_waits, 2, timeout_s=120)
    assert time.monotonic() - start < 60
