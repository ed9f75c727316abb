"""TorchRec's autograd functions of comm_ops, called as TorchRec code calls them, against plain torch.distributed.

The reference of every forward is computed from all ranks' inputs gathered with ``dist.all_gather`` (plain
torch); the gradient reference is the gradient of the global loss Σ_r <out_r, w_r> (÷ W with gradient division).
"""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed import comm_ops
from recsys_lib.distributed.comm_ops import Request
from recsys_lib.distributed.test_utils import run_multiprocess


def _rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _from_each(t, shapes):
    """Rank r's ``t`` (of shape ``shapes[r]``) for every r, by plain ``dist.broadcast``."""
    out = []
    for r, shape in enumerate(shapes):
        buf = t.detach().clone() if r == dist.get_rank() else torch.empty(shape, dtype=t.dtype)
        dist.broadcast(buf, src=r)
        out.append(buf)
    return out


def _gather(t):
    """Every rank's ``t`` (same shape everywhere), by plain ``dist.all_gather``."""
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.detach().contiguous())
    return parts


class _CountingA2A(comm_ops.DefaultAll2AllSingle):
    """A user-supplied all-to-all: counts its calls and allocations."""

    def __init__(self):
        self.calls = 0
        self.allocs = 0

    def allocate(self, size, *, dtype, device):
        self.allocs += 1
        return super().allocate(size, dtype=dtype, device=device)

    def __call__(self, output_tensor, input_tensor, output_split_sizes=None, input_split_sizes=None, group=None,
                 async_op=False):
        self.calls += 1
        return super().__call__(output_tensor, input_tensor, output_split_sizes, input_split_sizes, group, async_op)


def _pooled_req_wait(rank, world):
    pg = dist.group.WORLD
    B, D = [2, 3][:world] if world == 2 else [1] * world, [3, 2][:world] if world == 2 else [2] * world
    x = _rand(10 + rank, sum(B), D[rank]).requires_grad_()
    xs = _from_each(x, [(sum(B), d) for d in D])
    w = _rand(20 + rank, B[rank], sum(D))
    comm = _CountingA2A()
    myreq = Request(pg, x.device)
    a2ai = comm_ops.All2AllPooledInfo(B, D, None, None)
    comm_ops.All2All_Pooled_Req.apply(pg, myreq, a2ai, x, comm)
    out = myreq.wait()
    row0 = sum(B[:rank])
    expected = torch.cat([xs[k][row0:row0 + B[rank]] for k in range(world)], dim=1)
    torch.testing.assert_close(out, expected)
    (out * w).sum().backward()
    ws = _from_each(w, [(b, sum(D)) for b in B])
    # d loss / d x_rank: rows of rank r, columns of this rank's block in w_r; ÷ W (gradient division)
    col0 = sum(D[:rank])
    grad = torch.cat([ws[r][:, col0:col0 + D[rank]] for r in range(world)]) / world
    torch.testing.assert_close(x.grad, grad)
    assert comm.calls == 2 and comm.allocs == 2  # forward and backward went through the user's all-to-all
    assert myreq.wait_function is comm_ops.All2All_Pooled_Wait and myreq.a2ai is a2ai


def _reduce_scatter_families(rank, world):
    pg = dist.group.WORLD
    # ReduceScatter_Req: one tensor per rank, shapes differing per destination
    shapes = [(r + 1, 2) for r in range(world)]
    ins = [_rand(100 + 10 * rank + r, *shapes[r]).requires_grad_() for r in range(world)]
    myreq = Request(pg, torch.device("cpu"))
    comm_ops.ReduceScatter_Req.apply(pg, myreq, comm_ops.ReduceScatterInfo([t.size() for t in ins]), *ins)
    out = myreq.wait()
    everyone = [_gather(t) for t in ins]  # everyone[r][k]: rank k's chunk for r
    torch.testing.assert_close(out, sum(everyone[rank]))
    w = _rand(200 + rank, *out.shape)
    (out * w).sum().backward()
    ws = _from_each(w, shapes)  # d loss / d (my chunk for r) = w_r ÷ W
    for r in range(world):
        torch.testing.assert_close(ins[r].grad, ws[r] / world)

    # ReduceScatterV_Req: uneven dim-0 chunks
    splits = [3, 1][:world] if world == 2 else [1] * world
    x = _rand(300 + rank, sum(splits), 4).requires_grad_()
    rsi = comm_ops.ReduceScatterVInfo([[n, 4] for n in splits], splits, False, [sum(splits), 4], None)
    myreq = Request(pg, x.device)
    comm_ops.ReduceScatterV_Req.apply(pg, myreq, rsi, x)
    out = myreq.wait()
    off = sum(splits[:rank])
    xs = _gather(x)
    torch.testing.assert_close(out, sum(t[off:off + splits[rank]] for t in xs))
    w = _rand(400 + rank, *out.shape)
    (out * w).sum().backward()
    torch.testing.assert_close(x.grad, torch.cat(_from_each(w, [(n, 4) for n in splits])) / world)

    # AllGatherBase_Req / ReduceScatterBase_Req are each other's transpose
    y = _rand(500 + rank, 2, 3).requires_grad_()
    myreq = Request(pg, y.device)
    comm_ops.AllGatherBase_Req.apply(pg, myreq, comm_ops.AllGatherBaseInfo(y.size()), y)
    g = myreq.wait()
    torch.testing.assert_close(g, torch.cat(_gather(y)))
    wg = _rand(600 + rank, *g.shape)
    (g * wg).sum().backward()
    torch.testing.assert_close(y.grad, sum(t[2 * rank:2 * rank + 2] for t in _gather(wg)) / world)
    z = _rand(700 + rank, 2 * world, 3).requires_grad_()
    myreq = Request(pg, z.device)
    comm_ops.ReduceScatterBase_Req.apply(pg, myreq, comm_ops.ReduceScatterBaseInfo(z.size()), z)
    rs = myreq.wait()
    torch.testing.assert_close(rs, sum(t[2 * rank:2 * rank + 2] for t in _gather(z)))
    wz = _rand(800 + rank, *rs.shape)
    (rs * wz).sum().backward()
    torch.testing.assert_close(z.grad, torch.cat(_gather(wz)) / world)


def _all2allv_and_single(rank, world):
    pg = dist.group.WORLD
    # All2Allv: B_local_list[r] rows of the [B_global, ΣD_local] block go to rank r
    B_list = [1, 2][:world] if world == 2 else [1] * world
    D_local = [2, 1]
    dims_sum = [3] * world
    inputs = [_rand(900 + 10 * rank + i, sum(B_list), d) for i, d in enumerate(D_local)]
    a2ai = comm_ops.All2AllVInfo(dims_sum, sum(B_list), B_list[rank], B_list, D_local)
    myreq = Request(pg, torch.device("cpu"))
    comm_ops.All2Allv_Req.apply(pg, myreq, a2ai, inputs)
    outs = myreq.wait()
    full = _gather(torch.cat(inputs, dim=1))
    off = sum(B_list[:rank])
    assert len(outs) == world
    for k in range(world):
        torch.testing.assert_close(outs[k], full[k][off:off + B_list[rank]])

    # AllToAllSingle (functional): dim-0 splits, backward sends the gradient back ÷ W
    send = [r + 1 for r in range(world)]  # rows this rank sends to rank r
    recv = [rank + 1] * world
    x = _rand(1000 + rank, sum(send), 2).requires_grad_()
    out = comm_ops.AllToAllSingle.apply(x, recv, send, comm_ops.pg_name(pg), world, True)
    xs = _gather(x)
    torch.testing.assert_close(out, torch.cat([xs[k][sum(send[:rank]):sum(send[:rank + 1])] for k in range(world)]))
    w = _rand(1100 + rank, *out.shape)
    (out * w).sum().backward()
    ws = _from_each(w, [((r + 1) * world, 2) for r in range(world)])  # rank r received (r+1) rows per rank
    grad = torch.cat([ws[r][rank * (r + 1):(rank + 1) * (r + 1)] for r in range(world)]) / world
    torch.testing.assert_close(x.grad, grad)


def _custom_ops(rank, world):
    pg = dist.group.WORLD
    name = comm_ops.pg_name(pg)
    for dim in (0, 1):
        x = _rand(1200 + rank, 2, 3).requires_grad_()
        out = comm_ops.all_gather_into_tensor(x, dim, world, name, True)
        torch.testing.assert_close(out, torch.cat(_gather(x), dim=dim))
        w = _rand(1300 + rank, *out.shape)
        (out * w).sum().backward()
        own = [t.narrow(dim, rank * x.size(dim), x.size(dim)) for t in _gather(w)]
        torch.testing.assert_close(x.grad, sum(own) / world)
    y = _rand(1400 + rank, 2 * world, 3).requires_grad_()
    rs = comm_ops.reduce_scatter_tensor(y, "sum", world, name, False)
    ys = _gather(y)
    torch.testing.assert_close(rs, sum(t[2 * rank:2 * rank + 2] for t in ys))
    w = _rand(1500 + rank, *rs.shape)
    (rs * w).sum().backward()
    torch.testing.assert_close(y.grad, torch.cat(_gather(w)))  # no division requested
    mx = comm_ops.reduce_scatter_tensor(y.detach(), "max", world, name, False)
    torch.testing.assert_close(mx, torch.stack([t[2 * rank:2 * rank + 2] for t in ys]).amax(0))
    with pytest.raises(ValueError, match="unsupported reduceOp 'xor'"):
        comm_ops.reduce_scatter_tensor(y.detach(), "xor", world, name, False)


def _run_all(rank, world):
    _pooled_req_wait(rank, world)
    _reduce_scatter_families(rank, world)
    _all2allv_and_single(rank, world)
    _custom_ops(rank, world)
    return "ok"


@pytest.mark.dist
def test_torchrec_autograd_functions_match_plain_torch():
    assert run_multiprocess(_run_all, 2) == ["ok", "ok"]


def test_fake_kernels_and_default_alloc():
    x = torch.empty(2, 3, device="meta")
    assert comm_ops.all_gather_into_tensor_fake(x, 1, 4, "g", True).shape == (2, 12)
    assert comm_ops.reduce_scatter_tensor_fake(torch.empty(8, 3, device="meta"), "sum", 4, "g", True).shape == (2, 3)
    buf = comm_ops.DefaultAll2AllSingle().allocate([5], dtype=torch.float16, device=torch.device("cpu"))
    assert buf.shape == (5,) and buf.dtype == torch.float16
    with pytest.raises(TypeError):
        comm_ops.All2AllSingle()  # abstract
