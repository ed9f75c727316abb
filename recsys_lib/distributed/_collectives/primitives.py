"""Asynchronous collectives over ``torch.distributed`` with fallbacks where a backend lacks one.

Each function issues its collective(s) with ``async_op=True`` and returns a ``Pending`` whose ``wait()``
finishes it (waits the work, then decodes / reduces / reshapes). Tensors are made contiguous first
(gloo rejects strided inputs).

Backend gaps and the fallbacks used (checked on gloo, torch 2.13):

=====================================  ==========================================================
gloo gap                               fallback (same result; one collective)
=====================================  ==========================================================
``reduce_scatter`` missing before      ``all_to_all_single`` of the chunks, then a local sum over
torch 2.7; since then emulated as      the W received chunks in rank order. Used on gloo by default
W all-reduces                          (``ReduceScatterMode.ALL_TO_ALL_SUM``): one collective,
                                       deterministic summation order, any dtype the codec decodes to.
                                       Uncoded: sent straight from the input (no concatenation; the
                                       first and last rank keep their own chunk out of the exchange),
                                       the W blocks summed into one fresh tensor.
``all_gather`` with unequal sizes      ``all_to_all_single`` sending the local tensor to every rank
(``invalid tensor size``)              with per-rank output splits (uncoded: received straight into
                                       the result; equal sizes gather straight into it too).
slow ``all_gather_into_tensor`` for    uncoded results of ``BROADCAST_MIN_BYTES`` or more: one async
large payloads (output copies)         ``broadcast`` per rank straight into its rows of the result
                                       (``AllGatherMode``; W collectives, about 2x faster at 13 MB).
list ``all_to_all`` with unequal       only ``all_to_all_single`` (flat buffer + split sizes) is used.
sizes
non-contiguous inputs                  ``.contiguous()`` before every call.
=====================================  ==========================================================

Codecs: a payload is encoded per destination chunk and decoded per received chunk, so any codec
whose ``decode(encode(x))`` has ``x.numel()`` elements works; the native reduce-scatter sums in the
encoded dtype and is only used with floating-point encodings.
"""

import enum
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Sequence

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.codec import QuantizedCommCodec
from recsys_lib.distributed._collectives.waits import wait_work
from recsys_lib.ops._host_buffers import host_empty


class ReduceScatterMode(enum.Enum):
    """How a reduce-scatter is issued."""

    AUTO = "auto"  # NATIVE on nccl and other backends, ALL_TO_ALL_SUM on gloo
    NATIVE = "native"
    ALL_TO_ALL_SUM = "all_to_all_sum"


class AllGatherMode(enum.Enum):
    """How an uncoded all-gather is issued (coded payloads always use ``SINGLE``)."""

    AUTO = "auto"  # gloo: BROADCASTS for results of at least BROADCAST_MIN_BYTES, else SINGLE; other backends SINGLE
    SINGLE = "single"  # one collective: all_gather_into_tensor (equal sizes) or all_to_all_single (unequal)
    BROADCASTS = "broadcasts"  # one async broadcast per rank, each straight into its rows of the result


# Measured on gloo (2 ranks, 2-core host, torch 2.13): W async broadcasts beat one all_gather_into_tensor from
# about 256 KiB of result (13.6 MiB: 17 ms vs 31-40 ms); below ~128 KiB the single collective's latency wins.
BROADCAST_MIN_BYTES = 1 << 20


@dataclass(frozen=True)
class CollectivePolicy:
    """Per-call choices of collective implementation (passed down; no process-wide state).

    Args:
        reduce_scatter: see ``ReduceScatterMode``.
        all_gather: see ``AllGatherMode``.
    """

    reduce_scatter: ReduceScatterMode = ReduceScatterMode.AUTO
    all_gather: AllGatherMode = AllGatherMode.AUTO

    def resolved_reduce_scatter(self, group: Optional[dist.ProcessGroup]) -> ReduceScatterMode:
        if self.reduce_scatter is not ReduceScatterMode.AUTO:
            return self.reduce_scatter
        return ReduceScatterMode.ALL_TO_ALL_SUM if dist.get_backend(group) == "gloo" else ReduceScatterMode.NATIVE

    def resolved_all_gather(self, group: Optional[dist.ProcessGroup], result_bytes: int) -> AllGatherMode:
        """The mode for an all-gather whose result has ``result_bytes`` (the same on every rank)."""
        if self.all_gather is not AllGatherMode.AUTO:
            return self.all_gather
        big = result_bytes >= BROADCAST_MIN_BYTES
        return AllGatherMode.BROADCASTS if big and dist.get_backend(group) == "gloo" else AllGatherMode.SINGLE


class Pending:
    """An issued collective: ``wait()`` waits the work and returns the finished tensor.

    A failed wait raises :class:`CollectiveError` naming the collective (the function that issued it), so a
    hung peer ends in an error after the process group's ``timeout`` rather than an anonymous gloo message.
    """

    def __init__(
        self, work: Optional[dist.Work], finish: Callable[[], torch.Tensor], collective: str = "collective",
        group: Optional[dist.ProcessGroup] = None,
    ) -> None:
        self._work = work
        self._finish = finish
        self._collective = collective  # named in the error if the wait fails (dead or stalled peer)
        self._group = group

    def wait(self) -> torch.Tensor:
        if self._work is not None:
            wait_work(self._work, self._collective, self._group)
            self._work = None
        return self._finish()


def world(group: Optional[dist.ProcessGroup]) -> int:
    return dist.get_world_size(group)


def my_rank(group: Optional[dist.ProcessGroup]) -> int:
    return dist.get_rank(group)


def _context(codec: Optional[QuantizedCommCodec]) -> Any:
    # One context per collective call, shared by encode and decode on this rank (FBGEMM codecs record
    # the quantized row width in it while encoding; every rank encodes before it decodes).
    return None if codec is None else codec.create_context()


def _encode(codec: Optional[QuantizedCommCodec], t: torch.Tensor, ctx: Any) -> torch.Tensor:
    if codec is None:
        return t.contiguous()
    # FBGEMM codecs want 2-D input (rows of the last dim); the encoded payload travels flat.
    rows = t.contiguous().reshape(1, -1) if t.dim() < 2 else t.contiguous().reshape(-1, t.shape[-1])
    return codec.encode(rows, ctx).contiguous().reshape(-1)


def _decode(codec: Optional[QuantizedCommCodec], t: torch.Tensor, shape: Sequence[int], dtype: torch.dtype,
            ctx: Any) -> torch.Tensor:
    out = t if codec is None else codec.decode(t, ctx)
    return out.reshape(shape).to(dtype)


def _encoded_len(codec: Optional[QuantizedCommCodec], numel: int, ctx: Any) -> int:
    return numel if codec is None else int(codec.calc_quantized_size(numel, ctx))


def _alloc(comm: Optional[Any], n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    # a user-supplied ``comm_ops.All2AllSingle`` owns its buffers (e.g. a persistent pool)
    if comm is None:  # a large receive buffer on CPU gets 2 MB pages (the collective's thread writes it first)
        return host_empty((n,), dtype, device)
    return comm.allocate([n], dtype=dtype, device=device)


def _all_to_all_single(
    out: torch.Tensor, inp: torch.Tensor, out_splits: Optional[List[int]], in_splits: Optional[List[int]],
    group: Optional[dist.ProcessGroup], comm: Optional[Any],
) -> Optional[dist.Work]:
    if comm is None:
        return dist.all_to_all_single(out, inp, out_splits, in_splits, group=group, async_op=True)
    return comm(out, inp, out_splits, in_splits, group=group, async_op=True)


def all_to_all_chunks(
    send: List[torch.Tensor],
    recv_shapes: List[Sequence[int]],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    out_dtype: Optional[torch.dtype] = None,
    comm: Optional[Any] = None,
) -> Pending:
    """Sends ``send[r]`` to rank ``r``; ``wait()`` returns the list received (``recv_shapes[k]`` from rank ``k``).

    One ``all_to_all_single`` on a flat buffer: chunks may have any (unequal) sizes, including zero.
    ``comm`` (a ``comm_ops.All2AllSingle``) replaces ``dist.all_to_all_single`` and its buffer allocation.
    """
    if len(send) != world(group) or len(recv_shapes) != world(group):
        raise ValueError(
            f"all_to_all: need one send chunk and one receive shape per rank ({world(group)}), "
            f"got {len(send)} and {len(recv_shapes)}"
        )
    dtype = out_dtype if out_dtype is not None else (send[0].dtype if send else torch.float32)
    ctx = _context(codec)
    if len(send) == 1:
        # World of one: nothing to exchange. The codec still round-trips so numerics match larger worlds.
        only = send[0]
        if codec is None:
            # a copy: the result must not alias the caller's input (autograd and in-place safety)
            return Pending(None, lambda: [only.reshape(recv_shapes[0]).to(dtype, copy=True)])  # type: ignore[arg-type,list-item]
        enc = _encode(codec, only, ctx)
        return Pending(None, lambda: [_decode(codec, enc, recv_shapes[0], dtype, ctx)])  # type: ignore[arg-type,list-item]
    encoded = [_encode(codec, c, ctx).reshape(-1) for c in send]
    wire = encoded[0].dtype if encoded else dtype
    in_splits = [int(e.numel()) for e in encoded]
    numels = [int(torch.Size(s).numel()) for s in recv_shapes]
    out_splits = [_encoded_len(codec, n, ctx) for n in numels]
    buf_in = torch.cat(encoded) if encoded else torch.empty(0, dtype=wire)
    buf_out = _alloc(comm, sum(out_splits), wire, buf_in.device)
    work = _all_to_all_single(buf_out, buf_in, out_splits, in_splits, group, comm)

    def finish() -> List[torch.Tensor]:  # type: ignore[return-value]
        parts = buf_out.split(out_splits)
        return [_decode(codec, p, s, dtype, ctx) for p, s in zip(parts, recv_shapes)]

    return Pending(work, finish, "all_to_all (all_to_all_single)", group)  # type: ignore[arg-type]


def all_to_all_flat(
    flat: torch.Tensor,
    in_splits: List[int],
    out_splits: List[int],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    out_dtype: Optional[torch.dtype] = None,
    comm: Optional[Any] = None,
) -> Pending:
    """1-D all-to-all: ``in_splits[r]`` consecutive elements of ``flat`` go to rank r; ``wait()`` returns the
    1-D concatenation of what arrived (``out_splits[k]`` elements from rank k).

    Without a codec the input is sent in place and the receive buffer is the result (no extra copies).
    """
    w = world(group)
    if len(in_splits) != w or len(out_splits) != w or sum(in_splits) != flat.numel():
        raise ValueError(
            f"all_to_all: splits {in_splits} / {out_splits} need {w} entries and must cover the {flat.numel()} elements"
        )
    dtype = out_dtype if out_dtype is not None else flat.dtype
    if codec is not None:
        p = all_to_all_chunks(list(flat.reshape(-1).split(in_splits)), [(n,) for n in out_splits], group, codec, dtype,
                              comm)
        return Pending(None, lambda: torch.cat(p.wait()))  # type: ignore[arg-type]
    src = flat.contiguous().reshape(-1)
    if w == 1:
        return Pending(None, lambda: src.to(dtype, copy=True))
    out = _alloc(comm, sum(out_splits), src.dtype, src.device)
    # Equal splits: let the backend split evenly (measurably faster on gloo than explicit sizes).
    even = len(set(in_splits)) == 1 and in_splits == out_splits
    work = _all_to_all_single(out, src, None if even else out_splits, None if even else in_splits, group, comm)
    return Pending(work, lambda: out.to(dtype), "all_to_all (all_to_all_single)", group)


def reduce_scatter_v(
    input: torch.Tensor,
    splits: List[int],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Pending:
    """Sums, over ranks, chunk ``r`` of ``input`` (``splits[r]`` rows along dim 0) into rank ``r``.

    ``wait()`` returns a tensor of shape ``(splits[me], *input.shape[1:])``.
    """
    w, me = world(group), my_rank(group)
    if len(splits) != w or sum(splits) != input.size(0):
        raise ValueError(
            f"reduce_scatter: splits {splits} must have {w} entries summing to input.size(0)={input.size(0)}"
        )
    rest = tuple(input.shape[1:])
    if w == 1:
        p1 = all_to_all_chunks([input], [input.shape], group, codec, input.dtype)
        return Pending(None, lambda: p1.wait()[0])  # type: ignore[index]
    mode = (policy or CollectivePolicy()).resolved_reduce_scatter(group)
    summable = codec is None or codec.quantized_dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    chunks = list(input.contiguous().split(splits, dim=0))
    if mode is ReduceScatterMode.NATIVE and summable:
        ctx = _context(codec)
        send = [_encode(codec, c, ctx) for c in chunks]
        out = torch.empty_like(send[me])
        work = dist.reduce_scatter(out, send, group=group, async_op=True)
        return Pending(work, lambda: _decode(codec, out, (splits[me],) + rest, input.dtype, ctx), "reduce_scatter", group)
    if codec is None:
        return _reduce_scatter_by_all_to_all(input, splits, group, w, me)
    # Fallback: every rank sends chunk r to rank r; the receiver sums the W copies in rank order.
    pending = all_to_all_chunks(chunks, [(splits[me],) + rest] * w, group, codec, input.dtype)

    def finish() -> torch.Tensor:
        received: List[torch.Tensor] = pending.wait()  # type: ignore[assignment]
        total = received[0].clone()
        for part in received[1:]:
            total += part
        return total

    return Pending(None, finish)


def all_gather_v(
    input: torch.Tensor,
    sizes: List[int],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    policy: Optional[CollectivePolicy] = None,
    divide_by: int = 1,
) -> Pending:
    """Concatenates every rank's ``input / divide_by`` (``sizes[k]`` rows from rank ``k``) along dim 0, in rank order.

    Uncoded: straight into the result (see ``AllGatherMode``); the division is fused into the copy of the local
    rows. Coded: equal sizes use ``all_gather_into_tensor``, unequal sizes (no gloo kernel) ``all_to_all_single``.
    """
    w, me = world(group), my_rank(group)
    if len(sizes) != w or sizes[me] != input.size(0):
        raise ValueError(f"all_gather: sizes {sizes} must have {w} entries with sizes[{me}] == {input.size(0)}")
    rest = tuple(input.shape[1:])
    if w == 1:
        src1 = input / divide_by if divide_by != 1 else input
        p1 = all_to_all_chunks([src1], [input.shape], group, codec, input.dtype)
        return Pending(None, lambda: p1.wait()[0])  # type: ignore[index]
    if codec is None:
        nbytes = sum(sizes) * _row_numel(input) * input.element_size()
        mode = (policy or CollectivePolicy()).resolved_all_gather(group, nbytes)
        if mode is AllGatherMode.BROADCASTS:
            return _all_gather_by_broadcasts(input, sizes, group, me, divide_by)
        return _all_gather_uncoded(input / divide_by if divide_by != 1 else input, sizes, group, w)
    if divide_by != 1:
        input = input / divide_by
    if all(s == sizes[0] for s in sizes):
        ctx = _context(codec)
        enc = _encode(codec, input, ctx).reshape(-1)
        out = torch.empty(w * enc.numel(), dtype=enc.dtype, device=enc.device)
        # torch 2.13 renamed all_gather_into_tensor to all_gather_single (the old name warns).
        gather = getattr(dist, "all_gather_single", dist.all_gather_into_tensor)
        work = gather(out, enc, group=group, async_op=True)

        def finish_even() -> torch.Tensor:
            parts = [_decode(codec, p, (sizes[0],) + rest, input.dtype, ctx) for p in out.chunk(w)]
            return torch.cat(parts, dim=0)

        return Pending(work, finish_even, "all_gather", group)
    pending = all_to_all_chunks([input] * w, [(s,) + rest for s in sizes], group, codec, input.dtype)
    return Pending(None, lambda: torch.cat(pending.wait(), dim=0))  # type: ignore[arg-type]


def _row_numel(t: torch.Tensor) -> int:
    n = 1
    for d in t.shape[1:]:
        n *= int(d)
    return n


def _reduce_scatter_by_all_to_all(
    input: torch.Tensor, splits: List[int], group: Optional[dist.ProcessGroup], w: int, me: int
) -> Pending:
    """Uncoded reduce-scatter fallback: one ``all_to_all_single`` straight from ``input`` (no concatenation).

    The dim-0 chunks of a contiguous ``input`` are already the per-destination send blocks in rank order.
    On the first and last rank the own chunk sits at one end of ``input``, so it is left out of the exchange
    (zero split; saves the backend's local copy) and read in place; other ranks receive all W blocks. The
    receiver sums the W blocks in rank order (``((b_0 + b_1) + b_2) + ...``, as the coded path does) into
    one fresh tensor.
    """
    src = input.contiguous()
    row = _row_numel(input)
    n = splits[me] * row
    shape = (splits[me],) + tuple(input.shape[1:])
    in_splits = [s * row for s in splits]
    own: Optional[torch.Tensor] = None
    send = src.reshape(-1)
    if me in (0, w - 1):
        start = sum(splits[:me])
        own = src.narrow(0, start, splits[me])
        send = send[splits[0] * row:] if me == 0 else send[: start * row]
        in_splits[me] = 0
    out_splits = [0 if (own is not None and k == me) else n for k in range(w)]
    buf = torch.empty(sum(out_splits), dtype=src.dtype, device=src.device)
    work = dist.all_to_all_single(buf, send, out_splits, in_splits, group=group, async_op=True)

    def finish() -> torch.Tensor:
        n_received = w - 1 if own is not None else w
        received = iter(buf.view((n_received,) + shape).unbind(0))
        blocks = [own if (own is not None and k == me) else next(received) for k in range(w)]
        # a fresh tensor, not a view of the receive buffer: callers may modify the result in place
        total = torch.add(blocks[0], blocks[1])  # type: ignore[arg-type]
        for k in range(2, w):
            total.add_(blocks[k])  # type: ignore[arg-type]
        return total

    return Pending(work, finish, "reduce_scatter (all_to_all_single)", group)


def _all_gather_uncoded(
    input: torch.Tensor, sizes: List[int], group: Optional[dist.ProcessGroup], w: int
) -> Pending:
    """Uncoded all-gather straight into the ``(Σ sizes, *rest)`` result: no concatenation after the exchange.

    Equal sizes: ``all_gather_into_tensor``. Unequal sizes (gloo has no kernel): one
    ``all_to_all_single`` sending W copies of ``input`` (one per rank) with per-rank output splits.
    """
    src = input.contiguous()
    row = _row_numel(input)
    out = torch.empty((sum(sizes),) + tuple(input.shape[1:]), dtype=src.dtype, device=src.device)
    if all(s == sizes[0] for s in sizes):
        # torch 2.13 renamed all_gather_into_tensor to all_gather_single (the old name warns).
        gather = getattr(dist, "all_gather_single", dist.all_gather_into_tensor)
        work = gather(out, src, group=group, async_op=True)
    else:
        send = src.reshape(1, -1).expand(w, -1).contiguous().reshape(-1)
        work = dist.all_to_all_single(out.view(-1), send, [s * row for s in sizes], [src.numel()] * w,
                                      group=group, async_op=True)
    return Pending(work, lambda: out, "all_gather", group)


def _all_gather_by_broadcasts(
    input: torch.Tensor, sizes: List[int], group: Optional[dist.ProcessGroup], me: int, divide_by: int
) -> Pending:
    """Uncoded all-gather as one async broadcast per rank (ranks with zero rows skipped), each straight into
    that rank's rows of the ``(Σ sizes, *rest)`` result. The local rows are written once, divided on the way."""
    out = torch.empty((sum(sizes),) + tuple(input.shape[1:]), dtype=input.dtype, device=input.device)
    offsets = [sum(sizes[:k]) for k in range(len(sizes))]
    mine = out.narrow(0, offsets[me], sizes[me])
    if divide_by != 1:
        torch.div(input, divide_by, out=mine)
    else:
        mine.copy_(input)
    works = [
        dist.broadcast(out.narrow(0, offsets[k], n), group=group, group_src=k, async_op=True)
        for k, n in enumerate(sizes)
        if n > 0
    ]

    def finish() -> torch.Tensor:
        for work in works:
            wait_work(work, "all_gather (broadcast)", group)
        return out

    return Pending(None, finish)
