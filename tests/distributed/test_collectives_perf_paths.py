"""Fast paths of the gloo collectives against plain torch math (W=2 and W=3, uneven splits, forward + backward).

* reduce-scatter, uncoded: one ``all_to_all_single`` straight from the input, W blocks summed in rank order;
* all-gather, uncoded: ``SINGLE`` (one collective straight into the result) or ``BROADCASTS`` (one async
  broadcast per rank with rows, chosen by ``AUTO`` on gloo for results of at least ``BROADCAST_MIN_BYTES``);
* the reduce-scatter's backward fuses the division by W into the all-gather's local copy.

Oracle: every rank rebuilds every rank's input (seeded by rank); the forward is a slice / sum / concatenation of
the global inputs, and each rank's gradient is that of the global loss ``Σ_r <out_r, target_r>`` (divided by W
when gradient division is on). The gradient arriving at the collective is also a non-contiguous (expanded) one.
"""

import pytest
import torch

from recsys_lib.distributed import comm_ops
from recsys_lib.distributed._collectives.primitives import BROADCAST_MIN_BYTES
from recsys_lib.distributed.comm_ops import AllGatherMode, CollectivePolicy, ReduceScatterMode, count_collectives
from recsys_lib.distributed.test_utils import run_multiprocess


def _rand(seed, *shape, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def _targets(out_shape_of, world, seed, dtype=torch.float64):
    return [_rand(seed + r, *out_shape_of(r), dtype=dtype) for r in range(world)]


def _reduce_scatter_case(rank, world, splits, rest, divide, dtype=torch.float64):
    """reduce_scatter_v_pooled (uncoded all-to-all + sum) vs sum-then-slice, forward and backward."""
    comm_ops.set_gradient_division(divide)
    try:
        inputs = [_rand(40 + k, sum(splits), *rest, dtype=dtype).requires_grad_() for k in range(world)]
        offs = [sum(splits[:r]) for r in range(world)]
        ref = lambda r: sum(inputs[k][offs[r]:offs[r] + splits[r]] for k in range(world))  # noqa: E731
        targets = _targets(lambda r: (splits[r],) + rest, world, 900, dtype)
        x = inputs[rank].detach().clone().requires_grad_()
        policy = CollectivePolicy(reduce_scatter=ReduceScatterMode.ALL_TO_ALL_SUM)
        with count_collectives() as c:
            out = comm_ops.issue_reduce_scatter_v_pooled(x, splits, None, None, policy).wait()
            (out * targets[rank]).sum().backward()
        # sum order is rank order, as in the reference: bitwise equal
        torch.testing.assert_close(out, ref(rank).detach(), rtol=0, atol=0)
        assert not out._is_view() and out.data_ptr() != x.data_ptr()
        out.mul_(2)  # the result is a fresh tensor: in-place use is allowed
        sum((ref(r) * targets[r]).sum() for r in range(world)).backward()
        expected = inputs[rank].grad / world if divide else inputs[rank].grad
        torch.testing.assert_close(x.grad, expected)
        # forward: one all-to-all; backward (small): one all-gather, or an all-to-all for unequal splits
        even = all(s == splits[0] for s in splits)
        assert c.by_kind() == ({"all_to_all": 1, "all_gather": 1} if even else {"all_to_all": 2}), c.calls
    finally:
        comm_ops.set_gradient_division(True)


def _reduce_scatter_expanded_grad(rank, world):
    """The gradient reaching the collective is an expanded (stride-0) tensor: ``out.sum().backward()``."""
    splits = [2, 0, 3][:world] if world == 3 else [2, 3]
    inputs = [_rand(60 + k, sum(splits), 4).requires_grad_() for k in range(world)]
    x = inputs[rank].detach().clone().requires_grad_()
    out = comm_ops.reduce_scatter_v_pooled(x, splits).wait()
    out.sum().backward()
    # d/dx of Σ_r sum(out_r) is 1 for every element of every rank's input, divided by W
    torch.testing.assert_close(x.grad, torch.full_like(x, 1.0 / world))


def _all_gather_case(rank, world, sizes, rest, mode, expected_kind):
    """AllGatherVOp (via all_gather_base_pooled for equal sizes, the op directly otherwise) vs torch.cat."""
    inputs = [_rand(80 + k, sizes[k], *rest).requires_grad_() for k in range(world)]
    ref = torch.cat(inputs)
    target = _rand(900, sum(sizes), *rest)
    x = inputs[rank].detach().clone().requires_grad_()
    policy = CollectivePolicy(all_gather=mode)
    with count_collectives() as fwd:
        if all(s == sizes[0] for s in sizes):
            out = comm_ops.issue_all_gather_base_pooled(x, None, None, policy).wait()
        else:
            op = comm_ops.AllGatherVOp(torch.distributed.group.WORLD, sizes, None, True, policy)
            out = comm_ops.issue(op, x).wait()
    torch.testing.assert_close(out, ref.detach(), rtol=0, atol=0)
    assert not out._is_view()
    out.add_(0)  # fresh tensor: in-place use allowed
    (out * target).sum().backward()
    # every rank holds the whole result; loss Σ_r <out, target> → grad of rank k's input = W * target rows / W
    offs = [sum(sizes[:k]) for k in range(world)]
    expected = target[offs[rank]:offs[rank] + sizes[rank]]
    torch.testing.assert_close(x.grad, expected)
    kinds = fwd.by_kind()
    if expected_kind == "broadcast":
        assert kinds == {"broadcast": sum(1 for s in sizes if s > 0)}, kinds
    else:
        assert kinds == {expected_kind: 1}, kinds


def _reduce_scatter_backward_by_broadcasts(rank, world):
    """Large enough for AUTO to pick broadcasts in the backward all-gather; division fused; uneven splits."""
    d = 256
    rows = BROADCAST_MIN_BYTES // (4 * d) // world + 1
    splits = [rows + r for r in range(world)]
    inputs = [_rand(140 + k, sum(splits), d, dtype=torch.float32).requires_grad_() for k in range(world)]
    offs = [sum(splits[:r]) for r in range(world)]
    ref = lambda r: sum(inputs[k][offs[r]:offs[r] + splits[r]] for k in range(world))  # noqa: E731
    targets = _targets(lambda r: (splits[r], d), world, 700, torch.float32)
    x = inputs[rank].detach().clone().requires_grad_()
    out = comm_ops.reduce_scatter_v_pooled(x, splits).wait()
    with count_collectives() as bwd:
        (out * targets[rank]).sum().backward()
    assert bwd.by_kind() == {"broadcast": world}, bwd.calls
    torch.testing.assert_close(out, ref(rank).detach(), rtol=0, atol=0)
    sum((ref(r) * targets[r]).sum() for r in range(world)).backward()
    torch.testing.assert_close(x.grad, inputs[rank].grad / world)


def _subgroup_case(rank, world):
    """Broadcast all-gather and reduce-scatter on a subgroup of the last two ranks (group ranks != global ranks)."""
    members = [world - 2, world - 1]
    group = torch.distributed.new_group(members)
    if rank not in members:
        return
    me = members.index(rank)
    sizes = [2, 3]
    inputs = [_rand(300 + k, sizes[k], 4) for k in range(2)]
    policy = CollectivePolicy(all_gather=AllGatherMode.BROADCASTS)
    with count_collectives(group) as c:
        out = comm_ops.issue(comm_ops.AllGatherVOp(group, sizes, None, True, policy), inputs[me].clone()).wait()
    torch.testing.assert_close(out, torch.cat(inputs), rtol=0, atol=0)
    assert c.by_kind() == {"broadcast": 2}, c.calls
    full = [_rand(310 + k, 5, 4) for k in range(2)]
    got = comm_ops.reduce_scatter_v_pooled(full[me].clone(), sizes, group=group).wait()
    lo = sum(sizes[:me])
    torch.testing.assert_close(got, full[0][lo:lo + sizes[me]] + full[1][lo:lo + sizes[me]], rtol=0, atol=0)


def _in_place_outputs(rank, world):
    """Pooled and sequence all-to-all results may be modified in place (W=1 too); gradients follow the edit."""
    B, D = 2, 3
    inputs = [_rand(400 + k, B * world, D).requires_grad_() for k in range(world)]
    ref = lambda r: torch.cat([inputs[k][B * r:B * r + B] for k in range(world)], dim=1)  # noqa: E731
    seq_ref = lambda r: torch.cat([inputs[k][B * r:B * r + B] for k in range(world)], dim=0)  # noqa: E731
    x = inputs[rank].detach().clone().requires_grad_()
    pooled = comm_ops.alltoall_pooled(x, [B] * world, [D] * world).wait()
    seq = comm_ops.alltoall_sequence(x, None, None, torch.ones(B * world, dtype=torch.long), [B] * world,  # type: ignore[arg-type]
                                     [B] * world).wait()
    pooled.mul_(3)
    seq.add_(1)
    torch.testing.assert_close(pooled, 3 * ref(rank).detach())
    torch.testing.assert_close(seq, seq_ref(rank).detach() + 1)
    t1 = _rand(900 + rank, *pooled.shape)
    ((pooled * t1).sum() + (seq * seq).sum()).backward()
    loss = 0
    for r in range(world):
        loss = loss + (3 * ref(r) * _rand(900 + r, B, D * world)).sum() + ((seq_ref(r) + 1) ** 2).sum()
    loss.backward()
    torch.testing.assert_close(x.grad, inputs[rank].grad / world)


def _run(rank, world):
    uneven = [3, 0, 2] if world == 3 else [3, 1]
    for splits, rest in ((uneven, (5,)), ([2] * world, (3, 2)), (uneven, ())):
        for divide in (True, False):
            _reduce_scatter_case(rank, world, splits, rest, divide)
    _reduce_scatter_case(rank, world, uneven, (4,), True, dtype=torch.bfloat16)
    _reduce_scatter_expanded_grad(rank, world)
    small_uneven = [2, 0, 3] if world == 3 else [2, 3]
    for sizes, rest in (([2] * world, (3,)), (small_uneven, (3,)), (small_uneven, ())):
        even = all(s == sizes[0] for s in sizes)
        _all_gather_case(rank, world, sizes, rest, AllGatherMode.BROADCASTS, "broadcast")
        _all_gather_case(rank, world, sizes, rest, AllGatherMode.SINGLE, "all_gather" if even else "all_to_all")
        # small results: AUTO keeps the single collective
        _all_gather_case(rank, world, sizes, rest, AllGatherMode.AUTO, "all_gather" if even else "all_to_all")
    big = [BROADCAST_MIN_BYTES // (8 * 64) // world + 1] * world
    _all_gather_case(rank, world, big, (64,), AllGatherMode.AUTO, "broadcast")
    _reduce_scatter_backward_by_broadcasts(rank, world)
    _subgroup_case(rank, world)
    _in_place_outputs(rank, world)
    return "ok"


@pytest.mark.dist
@pytest.mark.parametrize("world", [2, 3])
def test_gloo_fast_paths_match_plain_torch(world):
    assert run_multiprocess(_run, world) == ["ok"] * world


def _world_of_one(rank, world):
    _in_place_outputs(rank, world)
    return "ok"


@pytest.mark.dist
def test_world_of_one_outputs_allow_in_place():
    assert run_multiprocess(_world_of_one, 1) == ["ok"]
