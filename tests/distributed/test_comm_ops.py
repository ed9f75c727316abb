"""comm_ops: every collective and its backward against plain-torch math on all ranks' inputs (gloo, W=2 and 4).

Each rank can rebuild every rank's input (seeded by rank), so the oracle is the unsharded computation:
the forward output is a slice/sum of the global inputs, and the gradient of each rank's input is the
gradient of the global loss Σ_r <out_r, w_r>, divided by W when gradient division is on.
"""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed import comm_ops
from recsys_lib.distributed.comm_ops import CollectivePolicy, ReduceScatterMode, count_collectives, permute_segments
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import QuantizedCommCodec, QuantizedCommCodecs


def _rand(seed, *shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


class _Fp16Codec(QuantizedCommCodec):
    """Test codec: half precision on the wire."""

    def encode(self, input_tensor, ctx=None):
        return input_tensor.to(torch.float16)

    def decode(self, input_grad, ctx=None):
        return input_grad.to(torch.float32)

    @property
    def quantized_dtype(self):
        return torch.float16

    def calc_quantized_size(self, input_len, ctx=None):
        return input_len


def _check_grads(leaves, out_fn, rank, world, divide):
    """Reference grads of rank's leaf under loss Σ_r <out_fn(r), w_r>."""
    loss = sum((out_fn(r) * _rand(900 + r, *out_fn(r).shape)).sum() for r in range(world))
    loss.backward()
    g = leaves[rank].grad
    return g / world if divide else g


def _pooled_a2a(rank, world):
    B = [2, 3, 1, 4][:world]
    D = [3, 0, 2, 5][:world] if world == 4 else [3, 2]
    inputs = [_rand(10 + k, sum(B), D[k]).requires_grad_() for k in range(world)]
    offs = [sum(B[:r]) for r in range(world)]
    ref = lambda r: torch.cat([inputs[k][offs[r]:offs[r] + B[r]] for k in range(world)], dim=1)  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    with count_collectives() as c:
        out = comm_ops.alltoall_pooled(x, B, D).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    torch.testing.assert_close(x.grad, _check_grads(inputs, ref, rank, world, True))
    assert c.by_kind() == {"all_to_all": 2}, c.by_kind()


def _pooled_a2a_no_division_and_codec(rank, world):
    B, D = [2] * world, [4] * world
    comm_ops.set_gradient_division(False)
    try:
        inputs = [_rand(20 + k, sum(B), D[k]).float().requires_grad_() for k in range(world)]
        ref = lambda r: torch.cat([inputs[k][2 * r:2 * r + 2] for k in range(world)], dim=1)  # noqa: E731
        x = inputs[rank].detach().clone().requires_grad_()
        codecs = QuantizedCommCodecs(forward=_Fp16Codec(), backward=_Fp16Codec())
        out = comm_ops.alltoall_pooled(x, B, D, codecs=codecs).wait()
        (out * _rand(900 + rank, *out.shape).float()).sum().backward()
    finally:
        comm_ops.set_gradient_division(True)
    # fp16 on the wire: relative error ~1e-3
    torch.testing.assert_close(out, ref(rank).detach(), rtol=2e-3, atol=2e-3)
    loss = sum((ref(r) * _rand(900 + r, 2, 4 * world).float()).sum() for r in range(world))
    loss.backward()
    torch.testing.assert_close(x.grad, inputs[rank].grad, rtol=2e-3, atol=2e-3)


def _variable_batch_a2a(rank, world):
    # rank k owns features feats[k] with dims; B[r][f] rows of rank r for global feature f
    feats = [[0, 1], [2]] if world == 2 else [[0], [1, 2], [], [3]]
    dims = [3, 2, 4, 1]
    nf = sum(len(f) for f in feats)
    B = [[1 + (r + f) % 3 for f in range(nf)] for r in range(world)]
    block = {(k, f, r): _rand(100 * k + 10 * f + r, B[r][f], dims[f]) for k in range(world) for f in feats[k] for r in range(world)}
    leaves = {key: v.clone().requires_grad_() for key, v in block.items()}

    def inp(k, src):
        parts = [src[(k, f, r)].reshape(-1) for r in range(world) for f in feats[k]]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def ref(r, src=leaves):
        parts = [src[(k, f, r)].reshape(-1) for k in range(world) for f in feats[k]]
        return torch.cat(parts)

    x = inp(rank, block).clone().requires_grad_()
    bsz_rank_feat = [[B[r][f] for f in feats[rank]] for r in range(world)]
    pre = [B[rank][f] for k in range(world) for f in feats[k]]
    emb_dims = [[dims[f] for f in feats[k]] for k in range(world)]
    with count_collectives() as c:
        out = comm_ops.variable_batch_alltoall_pooled(x, bsz_rank_feat, pre, emb_dims).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    loss = sum((ref(r) * _rand(900 + r, ref(r).numel())).sum() for r in range(world))
    loss.backward()
    grads = [leaves[(rank, f, r)].grad.reshape(-1) for r in range(world) for f in feats[rank]]
    expected = torch.cat(grads or [torch.zeros(0, dtype=torch.float64)]) / world
    torch.testing.assert_close(x.grad, expected)
    assert c.count("all_to_all") == 2


def _sequence_a2a(rank, world, variable):
    feats = [[0, 1], [2]] if world == 2 else [[0], [1, 2], [], [3]]
    D = 3
    bs = [2, 1, 3, 2][:world] if variable else [2] * world
    # lengths[f][r][b]: ids of sample b of rank r for feature f
    lengths = {(f, r): [(f + r + b) % 3 for b in range(bs[r])] for f in range(4) for r in range(world)}
    block = {(f, r): _rand(300 + 10 * f + r, sum(lengths[(f, r)]), D).requires_grad_() for f in range(4) for r in range(world)}
    mine = feats[rank]
    x = torch.cat([block[(f, r)] for f in mine for r in range(world)] or [torch.zeros(0, D, dtype=torch.float64)])
    x = x.detach().clone().requires_grad_()
    lengths_after = torch.tensor([v for f in mine for r in range(world) for v in lengths[(f, r)]], dtype=torch.long)
    F = len(mine)
    if variable:  # TorchRec's variable-batch recat indexes single samples: (f, r, b) input order → (r, f, b)
        pos = {key: i for i, key in enumerate((f, r, b) for f in range(F) for r in range(world) for b in range(bs[r]))}
        recat = torch.tensor([pos[(f, r, b)] for r in range(world) for f in range(F) for b in range(bs[r])],
                             dtype=torch.int32)
    else:
        recat = torch.tensor([f * world + r for r in range(world) for f in range(F)], dtype=torch.int32)
    back = torch.argsort(recat.long()).to(torch.int32)
    rows_sent = [sum(sum(lengths[(f, r)]) for f in mine) for r in range(world)]
    rows_received = [sum(sum(lengths[(f, rank)]) for f in feats[k]) for k in range(world)]
    ref = lambda r: torch.cat([block[(f, r)] for k in range(world) for f in feats[k]])  # noqa: E731
    with count_collectives() as c:
        # TorchRec convention: the splits of the sparse all-to-all (ids sent = rows received back), reversed
        out = comm_ops.alltoall_sequence(
            x, recat if F else None, back if F else None, lengths_after, rows_received, rows_sent,
            variable_batch_size=variable,
        ).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    loss = sum((ref(r) * _rand(900 + r, *ref(r).shape)).sum() for r in range(world))
    loss.backward()
    expected = torch.cat([block[(f, r)].grad for f in mine for r in range(world)] or [torch.zeros(0, D, dtype=torch.float64)])
    torch.testing.assert_close(x.grad, expected / world)
    assert c.count("all_to_all") == (2 if world > 1 else 0)  # a world of one exchanges nothing


def _reduce_scatters(rank, world, mode):
    policy = CollectivePolicy(reduce_scatter=mode)
    kind = "reduce_scatter" if mode is ReduceScatterMode.NATIVE else "all_to_all"
    # v: uneven row splits, one rank with zero rows
    splits = [3, 0, 2, 1][:world] if world == 4 else [3, 1]
    inputs = [_rand(40 + k, sum(splits), 5).requires_grad_() for k in range(world)]
    offs = [sum(splits[:r]) for r in range(world)]
    ref = lambda r: sum(inputs[k][offs[r]:offs[r] + splits[r]] for k in range(world))  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    with count_collectives() as c:
        out = comm_ops.issue_reduce_scatter_v_pooled(x, splits, None, None, policy).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    torch.testing.assert_close(x.grad, _check_grads(inputs, ref, rank, world, True))
    # forward: one reduce-scatter (or its all-to-all fallback); backward: uneven all-gather = one all-to-all
    expected = {"all_to_all": 2} if kind == "all_to_all" else {"reduce_scatter": 1, "all_to_all": 1}
    assert c.by_kind() == expected, c.calls

    # base: equal chunks; backward is an all_gather_into_tensor
    inputs = [_rand(50 + k, 2 * world, 3).requires_grad_() for k in range(world)]
    ref = lambda r: sum(inputs[k][2 * r:2 * r + 2] for k in range(world))  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    with count_collectives() as c:
        out = comm_ops.issue_reduce_scatter_base_pooled(x, None, None, policy).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    torch.testing.assert_close(x.grad, _check_grads(inputs, ref, rank, world, True))
    assert c.by_kind() == {kind: 1, "all_gather": 1}, c.calls

    # list form: chunk r has its own shape
    shapes = [(r + 1, 2) for r in range(world)]
    lists = [[_rand(60 + 10 * k + r, *shapes[r]).requires_grad_() for r in range(world)] for k in range(world)]
    ref = lambda r: sum(lists[k][r] for k in range(world))  # noqa: E731
    mine = [t.detach().clone().requires_grad_() for t in lists[rank]]
    out = comm_ops.issue_reduce_scatter_pooled(mine, None, None, policy).wait()
    (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    loss = sum((ref(r) * _rand(900 + r, *ref(r).shape)).sum() for r in range(world))
    loss.backward()
    for r in range(world):
        torch.testing.assert_close(mine[r].grad, lists[rank][r].grad / world)

    # per-feature variable batch: flat [rank][feature][row][dim]
    dims = [2, 3]
    bsz = [[1 + (r + f) % 2 for f in range(2)] for r in range(world)]
    n = [sum(b * d for b, d in zip(bsz[r], dims)) for r in range(world)]
    flat = [_rand(70 + k, sum(n)).requires_grad_() for k in range(world)]
    offs = [sum(n[:r]) for r in range(world)]
    ref = lambda r: sum(flat[k][offs[r]:offs[r] + n[r]] for k in range(world))  # noqa: E731
    x = flat[rank].detach().clone().requires_grad_()
    out = comm_ops.issue_reduce_scatter_v_per_feature_pooled(x, bsz, dims, None, None, policy).wait()
    (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    torch.testing.assert_close(x.grad, _check_grads(flat, ref, rank, world, True))


def _all_gather(rank, world):
    inputs = [_rand(80 + k, 2, 3).requires_grad_() for k in range(world)]
    ref = lambda r: torch.cat(inputs)  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    with count_collectives() as c:
        out = comm_ops.all_gather_base_pooled(x).wait()
        (out * _rand(900 + rank, *out.shape)).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach())
    torch.testing.assert_close(x.grad, _check_grads(inputs, ref, rank, world, True))
    assert c.by_kind() == {"all_gather": 1, "all_to_all": 1}, c.by_kind()  # backward: gloo RS fallback


def _bad_inputs(rank, world):
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="pooled all-to-all on rank"):
        comm_ops.alltoall_pooled(x, [1] * world, [2] * world)  # 3 rows, expected world rows
    with pytest.raises(ValueError, match="reduce_scatter: splits"):
        comm_ops.reduce_scatter_v_pooled(x, [3] * world)
    with pytest.raises(ValueError, match="not divisible"):
        comm_ops.reduce_scatter_base_pooled(torch.zeros(2 * world + 1, 2))
    # the group is still usable after rejected calls (nothing was issued)
    t = torch.ones(1)
    dist.all_reduce(t)
    assert t.item() == world


def _fbgemm_codecs(rank, world):
    from recsys_lib.distributed.fbgemm_qcomm_codec import CommType, QCommsConfig, get_qcomm_codecs

    # pooled all-to-all: fp16 payload, bf16 gradients (tolerances: fp16 ~1e-3, bf16 ~1e-2 relative)
    codecs = get_qcomm_codecs(QCommsConfig(forward_precision=CommType.FP16, backward_precision=CommType.BF16))
    B, D = [2] * world, [32] * world
    inputs = [_rand(110 + k, sum(B), 32).float().requires_grad_() for k in range(world)]
    ref = lambda r: torch.cat([inputs[k][2 * r:2 * r + 2] for k in range(world)], dim=1)  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    out = comm_ops.alltoall_pooled(x, B, D, codecs=codecs).wait()
    (out * _rand(900 + rank, *out.shape).float()).sum().backward()
    torch.testing.assert_close(out, ref(rank).detach(), rtol=2e-3, atol=2e-3)
    loss = sum((ref(r) * _rand(900 + r, 2, 32 * world).float()).sum() for r in range(world))
    loss.backward()
    torch.testing.assert_close(x.grad, inputs[rank].grad / world, rtol=2e-2, atol=2e-2)
    # reduce-scatter with an int8 payload: not summable on the wire, so even NATIVE decodes first (all-to-all)
    int8 = get_qcomm_codecs(QCommsConfig(forward_precision=CommType.INT8))
    splits = [1 + r for r in range(world)]
    ins = [torch.rand(sum(splits), 32, generator=torch.Generator().manual_seed(130 + k)) for k in range(world)]
    offs = [sum(splits[:r]) for r in range(world)]
    expected = sum(t[offs[rank]:offs[rank] + splits[rank]] for t in ins)
    for mode in (ReduceScatterMode.NATIVE, ReduceScatterMode.ALL_TO_ALL_SUM):
        with count_collectives() as c:
            got = comm_ops.issue_reduce_scatter_v_pooled(ins[rank].clone(), splits, None, int8,
                                                         CollectivePolicy(reduce_scatter=mode)).wait()
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-2 * world)  # int8 row-wise: ~2e-3 per term
        assert c.by_kind() == {"all_to_all": 1}, c.calls


def _run_all(rank, world):
    _pooled_a2a(rank, world)
    _pooled_a2a_no_division_and_codec(rank, world)
    _variable_batch_a2a(rank, world)
    _sequence_a2a(rank, world, variable=False)
    _sequence_a2a(rank, world, variable=True)
    for mode in (ReduceScatterMode.NATIVE, ReduceScatterMode.ALL_TO_ALL_SUM, ReduceScatterMode.AUTO):
        _reduce_scatters(rank, world, mode)
    _all_gather(rank, world)
    _fbgemm_codecs(rank, world)
    _bad_inputs(rank, world)
    return "ok"


def _world_of_one(rank, world):
    """T1: a single rank exchanges nothing: results equal the inputs, gradients pass through, no collective."""
    x = _rand(1, 3, 4).requires_grad_()
    with count_collectives() as c:
        outs = [
            comm_ops.alltoall_pooled(x, [3], [4]).wait(),
            comm_ops.reduce_scatter_v_pooled(x, [3]).wait(),
            comm_ops.reduce_scatter_base_pooled(x).wait(),
            comm_ops.all_gather_base_pooled(x).wait(),
        ]
        sum(o.sum() for o in outs).backward()
    for o in outs:
        torch.testing.assert_close(o, x.detach())
        assert o.data_ptr() != x.data_ptr()
    torch.testing.assert_close(x.grad, torch.full_like(x, 4.0))
    assert c.total == 0, c.calls
    _sequence_a2a(rank, world, variable=False)
    return "ok"


@pytest.mark.dist
@pytest.mark.parametrize("world", [2, pytest.param(4, marks=pytest.mark.slow)])
def test_collectives_match_plain_torch(world):
    assert run_multiprocess(_run_all, world) == ["ok"] * world


@pytest.mark.dist
def test_world_of_one_passes_through():
    assert run_multiprocess(_world_of_one, 1) == ["ok"]


def test_permute_segments_reorders_and_backprops():
    x = torch.arange(6.0).view(6, 1).requires_grad_()
    out = permute_segments(x, torch.tensor([2, 0, 1]), torch.tensor([1, 2, 3]))
    assert out.view(-1).tolist() == [3.0, 4.0, 5.0, 0.0, 1.0, 2.0]
    out.view(-1)[:1].sum().backward()
    assert x.grad.view(-1).tolist() == [0, 0, 0, 1, 0, 0]


def test_variable_batch_split_sizes_by_hand():
    # rank 0 owns features (dims 2, 3); rank 1 owns one feature (dim 4)
    ins, outs = comm_ops.variable_batch_split_sizes(0, [[1, 2], [3, 1]], [2, 1, 5], [[2, 3], [4]])
    assert ins == [1 * 2 + 2 * 3, 3 * 2 + 1 * 3]
    assert outs == [2 * 2 + 1 * 3, 5 * 4]
    with pytest.raises(ValueError, match="batch_size_per_feature_pre_a2a"):
        comm_ops.variable_batch_split_sizes(0, [[1, 2], [3, 1]], [2, 1], [[2, 3], [4]])
