"""sharded_relay_utils: packed all-reduce within each host's sparse groups vs plain per-group averages (gloo, W=4)."""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.sharded_relay_utils import (
    allreduce_tensors_with_sharded_relay,
    cleanup_sharded_relay,
    setup_sharded_relay,
)
from recsys_lib.distributed.test_utils import run_multiprocess


def _tensors(rank):
    g = torch.Generator().manual_seed(rank)
    return {
        torch.float32: [torch.randn(2, 3, generator=g), torch.randn(4, generator=g)],
        torch.float64: [torch.randn(5, generator=g, dtype=torch.float64)],
    }


def _relay(rank, world):
    state = setup_sharded_relay(rank, world, use_inter_host_allreduce=False)
    assert state is not None and state.precomputed_active_ranks == [[0, 1], [2, 3]]
    assert state.my_sparse_group == rank // 2
    mine = _tensors(rank)
    peers = [rank - rank % 2, rank - rank % 2 + 1]  # this rank's sparse group
    for op in (dist.ReduceOp.AVG, dist.ReduceOp.SUM):
        mine = _tensors(rank)
        allreduce_tensors_with_sharded_relay(state, mine, "test", op)
        for dtype, tensors in mine.items():
            for i, t in enumerate(tensors):
                total = sum(_tensors(p)[dtype][i] for p in peers)
                torch.testing.assert_close(t, total / 2 if op == dist.ReduceOp.AVG else total)
    assert state._flat_metadata_cache == {"test" + str(torch.float32): [10, 10], "test" + str(torch.float64): [5, 5]}
    cleanup_sharded_relay(state)
    with pytest.raises(RuntimeError, match="cleaned up"):
        allreduce_tensors_with_sharded_relay(state, _tensors(rank), "test")
    return "ok"


@pytest.mark.dist
def test_sharded_relay_averages_within_sparse_groups():
    assert run_multiprocess(_relay, 4, local_world_size=4) == ["ok"] * 4


def test_disabled_without_preconditions(monkeypatch, caplog):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert setup_sharded_relay(0, 2, use_inter_host_allreduce=False) is None  # fewer than 4 ranks per host
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert setup_sharded_relay(0, 8, use_inter_host_allreduce=True) is None
    assert setup_sharded_relay(0, 8, use_inter_host_allreduce=False, sharding_group_size=4) is None
    assert "sharded relay disabled" in caplog.text
