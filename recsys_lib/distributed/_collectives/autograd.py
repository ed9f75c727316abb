"""Autograd plumbing of the collectives: an issued collective is a ``Request``; backward runs the transpose.

Two ``torch.autograd.Function``s frame each collective so that both directions overlap with compute:

    forward:   _Req.apply(req, x)  issues the collective async  → dummy
               req.wait() → _Wait.apply(req, dummy)  waits      → output
    backward:  _Wait.backward   issues the transposed collective on grad(output) (async)
               _Req.backward    waits it                        → grad(x)

An op object (``_CollectiveOp``) supplies the forward collective and its transpose; everything
about sizes is fixed at construction, so backward needs no communication of metadata.
"""

import abc
from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._collectives.codec import QuantizedCommCodec, QuantizedCommCodecs
from recsys_lib.distributed._collectives.primitives import (
    CollectivePolicy,
    Pending,
    all_gather_v,
    all_to_all_flat,
    my_rank,
    reduce_scatter_v,
    world,
)
from recsys_lib.ops._host_buffers import host_empty


class _CollectiveOp(abc.ABC):
    """A collective (``start_forward``) and its transpose (``start_backward``) on ``group``."""

    def __init__(
        self, group: Optional[dist.ProcessGroup], codecs: Optional[QuantizedCommCodecs], gradient_division: bool
    ) -> None:
        self.group = group
        self.world = world(group)
        self.rank = my_rank(group)
        self.fwd_codec: Optional[QuantizedCommCodec] = None if codecs is None else codecs.forward
        self.bwd_codec: Optional[QuantizedCommCodec] = None if codecs is None else codecs.backward
        self.gradient_division = gradient_division

    @abc.abstractmethod
    def start_forward(self, x: torch.Tensor) -> Pending: ...

    @abc.abstractmethod
    def start_backward(self, grad: torch.Tensor) -> Pending: ...

    def scale_grad(self, grad: torch.Tensor) -> torch.Tensor:
        # Dense parameters are averaged over ranks by DDP; dividing here keeps embedding grads on the same scale.
        return grad / self.world if self.gradient_division else grad


@public_at("recsys_lib.distributed.comm_ops")
class Request(Awaitable[torch.Tensor]):
    """An issued collective; ``wait()`` returns its (autograd-connected) result.

    A ``*_Req`` autograd function (``comm_ops.All2All_Pooled_Req`` ...) issues the collective and fills this
    object; ``wait()`` runs the matching ``*_Wait`` function (``wait_function``) on ``dummy_tensor``, the
    ``*_Req`` output that links the two in the autograd graph.

    Args:
        pg: the process group the collective runs on.
        device: device of the result.
    """

    def __init__(self, pg: dist.ProcessGroup, device: torch.device) -> None:
        super().__init__()
        self.pg = pg
        self.device = device
        self.req: Optional[Pending] = None
        self.tensor: Optional[torch.Tensor] = None
        self.a2ai: Any = None
        self.qcomm_ctx: Any = None
        self.rsi: Any = None
        self.agi: Any = None
        self.wait_function: Any = None
        self.dummy_tensor: Optional[torch.Tensor] = None
        self.op: Optional[_CollectiveOp] = None
        self.bwd_req: Optional[Pending] = None
        # implementation choice for reduce-scatters / all-gathers issued on this request (None: per backend)
        self.policy: Optional[CollectivePolicy] = None

    def _wait_impl(self) -> torch.Tensor:
        if self.dummy_tensor is None or self.wait_function is None:
            raise RuntimeError("Request.wait(): the collective was never issued (or was already waited)")
        out = self.wait_function.apply(self.pg, self, self.dummy_tensor)
        self.dummy_tensor = None
        self.req = None
        self.tensor = None
        return out


def start_request(ctx: Any, myreq: Request, op: "_CollectiveOp", x: torch.Tensor, wait_function: Any) -> torch.Tensor:
    """Forward of a ``*_Req`` function: issues ``op`` on ``x`` into ``myreq``; returns the linking dummy."""
    myreq.op = op
    myreq.wait_function = wait_function
    myreq.req = op.start_forward(x)
    ctx.myreq = myreq
    # the returned tensor is this very object (autograd attaches the Req node to it), so wait() can pass it on
    myreq.dummy_tensor = torch.empty(0, device=x.device)
    return myreq.dummy_tensor


def finish_request_backward(ctx: Any) -> torch.Tensor:
    """Backward of a ``*_Req`` function: waits the transposed collective; returns the input's gradient."""
    req: Request = ctx.myreq
    if req.bwd_req is None:
        raise RuntimeError("collective backward: the transposed collective was not issued")
    grad = req.bwd_req.wait()
    req.bwd_req = None
    return grad


def _own_tensor(t: torch.Tensor) -> torch.Tensor:
    """``t``'s memory as a tensor of its own (not an autograd view; no copy)."""
    alias = torch.empty(0, dtype=t.dtype, device=t.device)
    return alias.set_(t.untyped_storage(), t.storage_offset(), t.size(), t.stride())


def wait_request(ctx: Any, myreq: Request) -> torch.Tensor:
    """Forward of a ``*_Wait`` function: waits the forward collective; returns its result."""
    if myreq.req is None:
        raise RuntimeError("Request.wait(): nothing in flight on this request")
    out = myreq.req.wait()
    myreq.req = None
    ctx.myreq = myreq
    if out._is_view():
        # A view made inside a custom Function's forward makes any in-place use of the output an autograd
        # error. The collectives' results are fresh buffers (never the input), so re-wrapping is safe.
        out = _own_tensor(out)
    return out


def start_request_backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
    """Backward of a ``*_Wait`` function: issues the transposed collective on ``grad``; returns the dummy's grad."""
    req: Request = ctx.myreq
    assert req.op is not None
    # no .contiguous() here: every op's backward copies or divides the gradient into a fresh buffer
    # anyway, and that first pass reads strided input at no extra cost (saves one full copy)
    req.bwd_req = req.op.start_backward(grad)
    return torch.zeros(0, device=grad.device)


class _Req(torch.autograd.Function):
    """Issues any ``_CollectiveOp`` (the generic form of the ``comm_ops.*_Req`` functions)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pg: Optional[dist.ProcessGroup], myreq: Request, op: "_CollectiveOp", x: torch.Tensor
    ) -> torch.Tensor:
        return start_request(ctx, myreq, op, x, _Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[None, None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx)


class _Wait(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, pg: Optional[dist.ProcessGroup], myreq: Request, *dummy: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return wait_request(ctx, myreq)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, start_request_backward(ctx, grad)


def issue(op: "_CollectiveOp", x: torch.Tensor) -> Request:
    """Issues ``op`` on ``x`` and returns the ``Request`` to wait on."""
    req = Request(op.group, x.device)  # type: ignore[arg-type]
    _Req.apply(op.group, req, op, x)
    return req


class PooledAllToAllOp(_CollectiveOp):
    """``[ΣB_r, D_me]`` on each rank → ``[B_me, ΣD_k]``: rank r receives its batch rows of every rank's columns."""

    def __init__(self, group: Optional[dist.ProcessGroup], batch_size_per_rank: List[int], dim_sum_per_rank: List[int],
                 codecs: Optional[QuantizedCommCodecs], gradient_division: bool, comm: Optional[Any] = None) -> None:
        super().__init__(group, codecs, gradient_division)
        self.comm = comm  # a comm_ops.All2AllSingle, or None for dist.all_to_all_single
        if len(batch_size_per_rank) != self.world or len(dim_sum_per_rank) != self.world:
            raise ValueError(
                f"pooled all-to-all: batch_size_per_rank {batch_size_per_rank} and dim_sum_per_rank "
                f"{dim_sum_per_rank} need one entry per rank ({self.world})"
            )
        self.B = list(batch_size_per_rank)
        self.D = list(dim_sum_per_rank)

    def start_forward(self, x: torch.Tensor) -> Pending:
        me = self.rank
        expected = (sum(self.B), self.D[me])
        if x.dim() != 2 or tuple(x.shape) != expected:
            raise ValueError(f"pooled all-to-all on rank {me}: input shape {tuple(x.shape)}, expected {expected}")
        # rows of rank r are consecutive in x, so x itself is the send buffer
        out_splits = [self.B[me] * d for d in self.D]
        p = all_to_all_flat(x, [b * self.D[me] for b in self.B], out_splits, self.group, self.fwd_codec, x.dtype,
                            self.comm)

        def finish() -> torch.Tensor:
            received = p.wait()  # always a fresh buffer
            if len(self.D) == 1:  # one rank: the received block is the output (no re-concatenation copy)
                return received.view(self.B[me], self.D[0])
            parts = received.split(out_splits)
            out = host_empty((self.B[me], sum(self.D)), received.dtype, received.device)
            return torch.cat([t.view(self.B[me], d) for t, d in zip(parts, self.D)], dim=1, out=out)

        return Pending(None, finish)

    def start_backward(self, grad: torch.Tensor) -> Pending:
        me = self.rank
        if len(self.D) == 1:
            # One rank: one column block and a division by 1 — send the gradient as is (the exchange copies it).
            send = grad.reshape(-1)
        else:
            send = host_empty((grad.numel(),), grad.dtype, grad.device)
            torch.cat([c.reshape(-1) for c in grad.split(self.D, 1)], out=send)  # column block k → rank k
            if self.gradient_division:
                send.div_(self.world)  # in place on the fresh send buffer: no extra pass over the gradient
        p = all_to_all_flat(send, [self.B[me] * d for d in self.D], [b * self.D[me] for b in self.B],
                            self.group, self.bwd_codec, grad.dtype, self.comm)
        return Pending(None, lambda: p.wait().view(sum(self.B), self.D[me]))


class FlatAllToAllOp(_CollectiveOp):
    """1-D all-to-all with fixed split sizes (``input_splits[r]`` elements to rank r); backward swaps them."""

    def __init__(self, group: Optional[dist.ProcessGroup], input_splits: List[int], output_splits: List[int],
                 codecs: Optional[QuantizedCommCodecs], gradient_division: bool, comm: Optional[Any] = None) -> None:
        super().__init__(group, codecs, gradient_division)
        self.input_splits = list(input_splits)
        self.output_splits = list(output_splits)
        self.comm = comm

    def start_forward(self, x: torch.Tensor) -> Pending:
        if x.dim() != 1 or x.numel() != sum(self.input_splits):
            raise ValueError(
                f"all-to-all on rank {self.rank}: input shape {tuple(x.shape)}, expected ({sum(self.input_splits)},)"
            )
        return all_to_all_flat(x, self.input_splits, self.output_splits, self.group, self.fwd_codec, x.dtype,
                               self.comm)

    def start_backward(self, grad: torch.Tensor) -> Pending:
        return all_to_all_flat(self.scale_grad(grad), self.output_splits, self.input_splits, self.group,
                               self.bwd_codec, grad.dtype, self.comm)


def permute_segments(x: torch.Tensor, permute: torch.Tensor, segment_lengths: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` grouped in consecutive segments (``segment_lengths``), reordered as ``permute`` says.

    ``out`` = segment ``permute[0]``, then segment ``permute[1]``, ... (plain torch; autograd via index_select).
    """
    lengths = segment_lengths.to(torch.long)
    starts = torch.cumsum(lengths, 0) - lengths
    perm = permute.to(torch.long)
    new_lengths = lengths[perm]
    new_starts = torch.cumsum(new_lengths, 0) - new_lengths
    total = int(new_lengths.sum().item())
    shift = torch.repeat_interleave(starts[perm] - new_starts, new_lengths, output_size=total)
    index = torch.arange(total, device=x.device) + shift.to(x.device)
    return x.index_select(0, index)


class SequenceAllToAllOp(_CollectiveOp):
    """``[ids, D]`` rows: re-order feature-major → rank-major (``forward_recat``), then all-to-all by row splits."""

    def __init__(self, group: Optional[dist.ProcessGroup], input_splits: List[int], output_splits: List[int],
                 forward_recat: Optional[torch.Tensor], backward_recat: Optional[torch.Tensor],
                 segment_lengths: Optional[torch.Tensor], codecs: Optional[QuantizedCommCodecs],
                 gradient_division: bool) -> None:
        super().__init__(group, codecs, gradient_division)
        self.input_splits = list(input_splits)
        self.output_splits = list(output_splits)
        self.forward_recat = forward_recat
        self.backward_recat = backward_recat
        self.segment_lengths = segment_lengths

    def start_forward(self, x: torch.Tensor) -> Pending:
        if x.dim() != 2 or x.size(0) != sum(self.input_splits):
            raise ValueError(
                f"sequence all-to-all on rank {self.rank}: input shape {tuple(x.shape)}, expected "
                f"({sum(self.input_splits)}, D)"
            )
        d = x.size(1)
        if self.forward_recat is not None and self.segment_lengths is not None:
            x = permute_segments(x, self.forward_recat, self.segment_lengths)
        p = all_to_all_flat(x, [n * d for n in self.input_splits], [n * d for n in self.output_splits],
                            self.group, self.fwd_codec, x.dtype)
        return Pending(None, lambda: p.wait().view(-1, d))

    def start_backward(self, grad: torch.Tensor) -> Pending:
        g = self.scale_grad(grad)
        d = g.size(1)
        p = all_to_all_flat(g, [n * d for n in self.output_splits], [n * d for n in self.input_splits],
                            self.group, self.bwd_codec, g.dtype)

        def finish() -> torch.Tensor:
            out = p.wait().view(-1, d)
            if self.forward_recat is not None and self.segment_lengths is not None:
                back = self.backward_recat
                if back is None:
                    back = torch.argsort(self.forward_recat.to(torch.long))
                out = permute_segments(out, back, self.segment_lengths[self.forward_recat.to(torch.long)])
            return out

        return Pending(None, finish)


class ReduceScatterVOp(_CollectiveOp):
    """Sum over ranks of dim-0 chunk r (``splits[r]`` rows) into rank r; backward = all-gather of the grads."""

    def __init__(self, group: Optional[dist.ProcessGroup], splits: List[int], codecs: Optional[QuantizedCommCodecs],
                 gradient_division: bool, policy: Optional[CollectivePolicy]) -> None:
        super().__init__(group, codecs, gradient_division)
        self.splits = list(splits)
        self.policy = policy

    def start_forward(self, x: torch.Tensor) -> Pending:
        return reduce_scatter_v(x, self.splits, self.group, self.fwd_codec, self.policy)

    def start_backward(self, grad: torch.Tensor) -> Pending:
        # the division by W is fused into the all-gather's copy of the local rows (no separate pass)
        divide_by = self.world if self.gradient_division else 1
        return all_gather_v(grad, self.splits, self.group, self.bwd_codec, self.policy, divide_by)


class AllGatherVOp(_CollectiveOp):
    """Concatenation over ranks along dim 0 (``sizes[k]`` rows from rank k); backward = reduce-scatter."""

    def __init__(self, group: Optional[dist.ProcessGroup], sizes: List[int], codecs: Optional[QuantizedCommCodecs],
                 gradient_division: bool, policy: Optional[CollectivePolicy]) -> None:
        super().__init__(group, codecs, gradient_division)
        self.sizes = list(sizes)
        self.policy = policy

    def start_forward(self, x: torch.Tensor) -> Pending:
        return all_gather_v(x, self.sizes, self.group, self.fwd_codec, self.policy)

    def start_backward(self, grad: torch.Tensor) -> Pending:
        return reduce_scatter_v(self.scale_grad(grad), self.sizes, self.group, self.bwd_codec, self.policy)
