"""Tensor / splits / jagged all-to-alls, the synchronous comm_ops and collective_utils on gloo (W=2, then W=4).

Each rank rebuilds every rank's input from a seed, so the oracle is plain slicing of the global inputs.
"""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed import collective_utils, comm_ops
from recsys_lib.distributed.dist_data import (
    JaggedTensorAllToAll,
    SplitsAllToAllAwaitable,
    TensorAllToAll,
    TensorValuesAllToAll,
)
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _splits(r, world):
    """Rows rank r sends to each rank (deterministic, some zero)."""
    return torch.tensor([(r * 3 + k * 2) % 4 for k in range(world)], dtype=torch.int64)


def _rows(r, world):
    n = int(_splits(r, world).sum())
    return torch.arange(n * 2, dtype=torch.float32).view(n, 2) + 100 * r


def _expected_rows(me, world):
    parts = []
    for k in range(world):
        s = _splits(k, world).tolist()
        start = sum(s[:me])
        parts.append(_rows(k, world)[start:start + s[me]])
    return torch.cat(parts)


def _tensor_all_to_alls(rank, world):
    pg = dist.group.WORLD
    out = TensorAllToAll(pg)(_rows(rank, world), _splits(rank, world)).wait().wait()
    torch.testing.assert_close(out, _expected_rows(rank, world))
    recv = torch.tensor([_splits(k, world)[rank] for k in range(world)])
    out2 = TensorValuesAllToAll(pg)(_rows(rank, world), _splits(rank, world), recv).wait()
    torch.testing.assert_close(out2, _expected_rows(rank, world))
    # splits: tensor i from rank k holds [10*i + k*world + j for j] → this rank gets entry j=rank of each peer
    tensors = [torch.tensor([10 * i + rank * world + j for j in range(world)]) for i in range(2)]
    got = SplitsAllToAllAwaitable(tensors, pg).wait()
    assert got == [[10 * i + k * world + rank for k in range(world)] for i in range(2)]


def _jagged(rank, world):
    pg = dist.group.WORLD
    items = _splits(rank, world)  # items (jagged rows) to each rank

    def jt_of(r):
        n = int(_splits(r, world).sum())
        lengths = torch.tensor([(r + i) % 3 for i in range(n)])
        values = torch.arange(int(lengths.sum())) + 1000 * r
        return JaggedTensor(values=values, lengths=lengths, weights=values.float() / 10)

    recv = torch.tensor([_splits(k, world)[rank] for k in range(world)])
    out = JaggedTensorAllToAll(jt_of(rank), items, recv, pg).wait()
    exp_lengths, exp_values = [], []
    for k in range(world):
        jt, s = jt_of(k), _splits(k, world).tolist()
        lo, hi = sum(s[:rank]), sum(s[:rank + 1])
        offs = jt.offsets()
        exp_lengths.append(jt.lengths()[lo:hi])
        exp_values.append(jt.values()[offs[lo]:offs[hi]])
    torch.testing.assert_close(out.lengths(), torch.cat(exp_lengths))
    torch.testing.assert_close(out.values(), torch.cat(exp_values))
    torch.testing.assert_close(out.weights(), torch.cat(exp_values).float() / 10)


def _sync_ops(rank, world):
    pg = dist.group.WORLD
    assert comm_ops.pg_name(pg) == dist.distributed_c10d._get_process_group_name(pg)
    g = lambda r: torch.arange(world * 3 * 2, dtype=torch.float64).view(world * 3, 2) * (r + 1)  # noqa: E731
    x = g(rank).requires_grad_()
    out = comm_ops.reduce_scatter_base_sync(pg, comm_ops.ReduceScatterBaseInfo(x.shape), x)
    torch.testing.assert_close(out, sum(g(k) for k in range(world))[rank * 3:(rank + 1) * 3])
    out.sum().backward()  # backward is an all-gather of ones, divided by W (gradient division)
    torch.testing.assert_close(x.grad, torch.full_like(x, 1.0 / world))
    gathered = comm_ops.all_gather_base_sync(pg, comm_ops.AllGatherBaseInfo(torch.Size([1, 2])), g(rank)[:1])
    torch.testing.assert_close(gathered, torch.cat([g(k)[:1] for k in range(world)]))
    B, D = [1 + k for k in range(world)], [2 + k for k in range(world)]
    inp = lambda k: torch.full((sum(B), D[k]), float(k)) + torch.arange(sum(B)).unsqueeze(1)  # noqa: E731
    pooled = comm_ops.all2all_pooled_sync(pg, comm_ops.All2AllPooledInfo(B, D, None, None), inp(rank))
    lo = sum(B[:rank])
    torch.testing.assert_close(pooled, torch.cat([inp(k)[lo:lo + B[rank]] for k in range(world)], dim=1))


def _shared_creation(rank, world):
    pg = dist.group.WORLD
    made = []
    result = collective_utils.create_on_rank_and_share_result(
        pg, 1, lambda n: made.append(n) or (torch.arange(n * 2.0).view(n, 2), None), lambda r: list(r),
        lambda ts: (ts[0], ts[1]), 3,
    )
    assert made == ([3] if rank == 1 else [])
    torch.testing.assert_close(result[0], torch.arange(6.0).view(3, 2))
    assert result[1] is None
    dist.barrier()
    if rank == 1:
        result[0].add_(1)  # the creator writes; the others see it: same shared memory
    dist.barrier()
    torch.testing.assert_close(result[0], torch.arange(6.0).view(3, 2) + 1)
    dist.barrier()
    collective_utils.init_collective_validation(pg)
    return collective_utils.validate_collectives_enabled()


def _all(rank, world):
    _tensor_all_to_alls(rank, world)
    _jagged(rank, world)
    _sync_ops(rank, world)
    return _shared_creation(rank, world)


def test_world_2(monkeypatch):
    monkeypatch.setenv("TORCHREC_VALIDATE_COLLECTIVES", "1")
    assert run_multiprocess(_all, 2) == [True, True]


@pytest.mark.slow
def test_world_4():
    assert run_multiprocess(_all, 4) == [False] * 4
