"""Asynchronous collectives over ``torch.distributed`` with fallbacks where a backend lacks one.

Each function issues one collective with ``async_op=True`` and returns a ``Pending`` whose ``wait()``
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
``all_gather`` with unequal sizes      ``all_to_all_single`` sending the local tensor to every rank
(``invalid tensor size``)              with per-rank output splits.
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

from recsys_lib.distributed._codec import QuantizedCommCodec


class ReduceScatterMode(enum.Enum):
    """How a reduce-scatter is issued."""

    AUTO = "auto"  # NATIVE on nccl and other backends, ALL_TO_ALL_SUM on gloo
    NATIVE = "native"
    ALL_TO_ALL_SUM = "all_to_all_sum"


@dataclass(frozen=True)
class CollectivePolicy:
    """Per-call choices of collective implementation (passed down; no process-wide state).

    Args:
        reduce_scatter: see ``ReduceScatterMode``.
    """

    reduce_scatter: ReduceScatterMode = ReduceScatterMode.AUTO

    def resolved_reduce_scatter(self, group: Optional[dist.ProcessGroup]) -> ReduceScatterMode:
        if self.reduce_scatter is not ReduceScatterMode.AUTO:
            return self.reduce_scatter
        return ReduceScatterMode.ALL_TO_ALL_SUM if dist.get_backend(group) == "gloo" else ReduceScatterMode.NATIVE


class Pending:
    """An issued collective: ``wait()`` waits the work and returns the finished tensor."""

    def __init__(self, work: Optional[dist.Work], finish: Callable[[], torch.Tensor]) -> None:
        self._work = work
        self._finish = finish

    def wait(self) -> torch.Tensor:
        if self._work is not None:
            self._work.wait()
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


def all_to_all_chunks(
    send: List[torch.Tensor],
    recv_shapes: List[Sequence[int]],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    out_dtype: Optional[torch.dtype] = None,
) -> Pending:
    """Sends ``send[r]`` to rank ``r``; ``wait()`` returns the list received (``recv_shapes[k]`` from rank ``k``).

    One ``all_to_all_single`` on a flat buffer: chunks may have any (unequal) sizes, including zero.
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
    buf_out = torch.empty(sum(out_splits), dtype=wire, device=buf_in.device)
    work = dist.all_to_all_single(buf_out, buf_in, out_splits, in_splits, group=group, async_op=True)

    def finish() -> List[torch.Tensor]:  # type: ignore[return-value]
        parts = buf_out.split(out_splits)
        return [_decode(codec, p, s, dtype, ctx) for p, s in zip(parts, recv_shapes)]

    return Pending(work, finish)  # type: ignore[arg-type]


def all_to_all_flat(
    flat: torch.Tensor,
    in_splits: List[int],
    out_splits: List[int],
    group: Optional[dist.ProcessGroup],
    codec: Optional[QuantizedCommCodec] = None,
    out_dtype: Optional[torch.dtype] = None,
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
        p = all_to_all_chunks(list(flat.reshape(-1).split(in_splits)), [(n,) for n in out_splits], group, codec, dtype)
        return Pending(None, lambda: torch.cat(p.wait()))  # type: ignore[arg-type]
    src = flat.contiguous().reshape(-1)
    if w == 1:
        return Pending(None, lambda: src.to(dtype, copy=True))
    out = torch.empty(sum(out_splits), dtype=src.dtype, device=src.device)
    # Equal splits: let the backend split evenly (measurably faster on gloo than explicit sizes).
    even = len(set(in_splits)) == 1 and in_splits == out_splits
    work = dist.all_to_all_single(out, src, None if even else out_splits, None if even else in_splits,
                                  group=group, async_op=True)
    return Pending(work, lambda: out.to(dtype))


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
    chunks = list(input.contiguous().split(splits, dim=0))
    mode = (policy or CollectivePolicy()).resolved_reduce_scatter(group)
    summable = codec is None or codec.quantized_dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    if mode is ReduceScatterMode.NATIVE and summable:
        ctx = _context(codec)
        send = [_encode(codec, c, ctx) for c in chunks]
        out = torch.empty_like(send[me])
        work = dist.reduce_scatter(out, send, group=group, async_op=True)
        return Pending(work, lambda: _decode(codec, out, (splits[me],) + rest, input.dtype, ctx))
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
) -> Pending:
    """Concatenates every rank's ``input`` (``sizes[k]`` rows from rank ``k``) along dim 0, in rank order.

    Equal sizes use ``all_gather_into_tensor``; unequal sizes (no gloo kernel) use ``all_to_all_single``.
    """
    w, me = world(group), my_rank(group)
    if len(sizes) != w or sizes[me] != input.size(0):
        raise ValueError(f"all_gather: sizes {sizes} must have {w} entries with sizes[{me}] == {input.size(0)}")
    rest = tuple(input.shape[1:])
    if w == 1:
        p1 = all_to_all_chunks([input], [input.shape], group, codec, input.dtype)
        return Pending(None, lambda: p1.wait()[0])  # type: ignore[index]
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

        return Pending(work, finish_even)
    pending = all_to_all_chunks([input] * w, [(s,) + rest for s in sizes], group, codec, input.dtype)
    return Pending(None, lambda: torch.cat(pending.wait(), dim=0))  # type: ignore[arg-type]
