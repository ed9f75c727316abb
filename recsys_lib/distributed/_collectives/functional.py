"""Pluggable all-to-all primitives and the traceable (functional) collectives of ``comm_ops``.

* ``Comm`` / ``All2AllSingle``: the interface a caller implements to own the buffers and the call of an
  all-to-all (e.g. a persistent buffer pool); ``DefaultAll2AllSingle`` is ``torch.empty`` +
  ``dist.all_to_all_single``. ``comm_ops.alltoall_pooled(..., all_to_all_single_comm=...)`` uses one.
* ``AllToAllSingle``: an autograd function over a process group named by ``group_name`` (backward = the
  transposed all-to-all, divided by the group size when ``gradient_division``).
* ``all_gather_into_tensor`` / ``reduce_scatter_tensor``: custom ops ``recsys_lib::...`` with fake (meta)
  kernels and autograd (each other's transpose), usable under ``torch.compile``. They run on our collectives,
  so gloo works too (its missing reduce-scatter is replaced as in ``_collectives/primitives``).

Shape glossary: ``W`` group size.
"""

import abc
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.primitives import all_gather_v, all_to_all_chunks, all_to_all_flat, reduce_scatter_v


@public_at("recsys_lib.distributed.comm_ops")
class Comm(abc.ABC):
    """A communication primitive that chooses how its buffers are allocated (and where)."""

    @abc.abstractmethod
    def allocate(
        self,
        size: Sequence[Union[int, torch.SymInt]],
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        """A buffer of ``size`` elements for a collective's output."""
        ...


@public_at("recsys_lib.distributed.comm_ops")
class All2AllSingle(Comm):
    """An all-to-all of one flat tensor (``dist.all_to_all_single``'s contract)."""

    @abc.abstractmethod
    def __call__(
        self,
        output_tensor: torch.Tensor,
        input_tensor: torch.Tensor,
        output_split_sizes: Optional[list[int]] = None,
        input_split_sizes: Optional[list[int]] = None,
        group: Optional[dist.ProcessGroup] = None,
        async_op: bool = False,
    ) -> Optional[dist.Work]:
        """Scatters ``input_tensor`` by ``input_split_sizes`` and gathers into ``output_tensor`` (even splits when
        ``None``); returns the work handle when ``async_op``."""
        ...


@public_at("recsys_lib.distributed.comm_ops")
class DefaultAllocMixin:
    """``allocate`` with ``torch.empty`` (the caching allocator of the device)."""

    def allocate(
        self,
        size: Sequence[Union[int, torch.SymInt]],
        *,
        dtype: torch.dtype,
        device: torch.device,
    ) -> torch.Tensor:
        return torch.empty(size, dtype=dtype, device=device)


@public_at("recsys_lib.distributed.comm_ops")
class DefaultAll2AllSingle(DefaultAllocMixin, All2AllSingle):
    """``torch.empty`` buffers and ``dist.all_to_all_single``."""

    def __call__(
        self,
        output_tensor: torch.Tensor,
        input_tensor: torch.Tensor,
        output_split_sizes: Optional[list[int]] = None,
        input_split_sizes: Optional[list[int]] = None,
        group: Optional[dist.ProcessGroup] = None,
        async_op: bool = False,
    ) -> Optional[dist.Work]:
        return dist.all_to_all_single(
            output_tensor, input_tensor, output_split_sizes, input_split_sizes, group=group, async_op=async_op
        )


def _resolve(group_name: str) -> dist.ProcessGroup:
    return dist.distributed_c10d._resolve_process_group(group_name)


def _rows_all_to_all(x: torch.Tensor, send_rows: List[int], recv_rows: List[int], group: dist.ProcessGroup) -> torch.Tensor:
    """Dim-0 all-to-all: ``send_rows[r]`` rows to rank r, ``recv_rows[k]`` rows from rank k."""
    rest = tuple(x.shape[1:])
    per_row = int(torch.Size(rest).numel())
    flat = x.contiguous().reshape(-1)
    out = all_to_all_flat(flat, [n * per_row for n in send_rows], [n * per_row for n in recv_rows], group).wait()
    return out.view((sum(recv_rows),) + rest)


@public_at("recsys_lib.distributed.comm_ops")
class AllToAllSingle(torch.autograd.Function):
    """Dim-0 all-to-all over the group named ``group_name``; backward sends the gradient back (÷ W if
    ``gradient_division``). Split sizes count rows."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        input: torch.Tensor,
        output_split_sizes: List[int],
        input_split_sizes: List[int],
        group_name: str,
        group_size: int,
        gradient_division: bool,
    ) -> torch.Tensor:
        group = _resolve(group_name)
        ctx.group, ctx.group_size, ctx.gradient_division = group, group_size, gradient_division
        ctx.send, ctx.recv = list(input_split_sizes), list(output_split_sizes)
        return _rows_all_to_all(input, ctx.send, ctx.recv, group)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        out = _rows_all_to_all(grad, ctx.recv, ctx.send, ctx.group)
        if ctx.gradient_division:
            out.div_(ctx.group_size)
        return out, None, None, None, None, None


def _gather_dim0(shard: torch.Tensor, group_size: int, group_name: str) -> torch.Tensor:
    group = _resolve(group_name)
    if dist.get_world_size(group) != group_size:
        raise ValueError(f"all_gather_into_tensor: group_size={group_size}, but group {group_name!r} has "
                         f"{dist.get_world_size(group)} ranks")
    return all_gather_v(shard.contiguous(), [shard.size(0)] * group_size, group).wait()


def _sum_scatter_dim0(input: torch.Tensor, group_size: int, group_name: str) -> torch.Tensor:
    group = _resolve(group_name)
    if dist.get_world_size(group) != group_size or input.size(0) % group_size != 0:
        raise ValueError(f"reduce_scatter_tensor: input.size(0)={input.size(0)} must split over group_size="
                         f"{group_size} (group {group_name!r} has {dist.get_world_size(group)} ranks)")
    return reduce_scatter_v(input.contiguous(), [input.size(0) // group_size] * group_size, group).wait()


@torch.library.custom_op("recsys_lib::all_gather_into_tensor", mutates_args=())
def all_gather_into_tensor(
    shard: torch.Tensor, gather_dim: int, group_size: int, group_name: str, gradient_division: bool
) -> torch.Tensor:
    """Every rank's ``shard`` concatenated along ``gather_dim`` (rank order)."""
    gathered = _gather_dim0(shard.movedim(gather_dim, 0) if gather_dim != 0 else shard, group_size, group_name)
    if gather_dim == 0:
        return gathered
    parts = gathered.chunk(group_size, 0)
    return torch.cat([p.movedim(0, gather_dim) for p in parts], dim=gather_dim)


@all_gather_into_tensor.register_fake
def all_gather_into_tensor_fake(
    shard: torch.Tensor, gather_dim: int, group_size: int, group_name: str, gradient_division: bool
) -> torch.Tensor:
    size = list(shard.size())
    size[gather_dim] *= group_size
    return shard.new_empty(size)


def all_gather_into_tensor_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    _, gather_dim, group_size, group_name, gradient_division = inputs
    ctx.gather_dim = gather_dim
    ctx.group_size = group_size
    ctx.group_name = group_name
    ctx.gradient_division = gradient_division


def all_gather_into_tensor_backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    """Sum over ranks of this rank's block of the gradient (÷ W when ``gradient_division``)."""
    dim = ctx.gather_dim
    if dim != 0:  # blocks along gather_dim → stacked along dim 0
        grad = torch.cat([g.movedim(dim, 0) for g in grad.chunk(ctx.group_size, dim)], dim=0)
    out = _sum_scatter_dim0(grad, ctx.group_size, ctx.group_name)
    if dim != 0:
        out = out.movedim(0, dim).contiguous()
    if ctx.gradient_division:
        out = out / ctx.group_size
    return out, None, None, None, None


all_gather_into_tensor.register_autograd(all_gather_into_tensor_backward, setup_context=all_gather_into_tensor_setup_context)

_LOCAL_REDUCE = {
    "sum": lambda s: s.sum(0),
    "avg": lambda s: s.mean(0),
    "product": lambda s: s.prod(0),
    "min": lambda s: s.amin(0),
    "max": lambda s: s.amax(0),
}


@torch.library.custom_op("recsys_lib::reduce_scatter_tensor", mutates_args=())
def reduce_scatter_tensor(
    input: torch.Tensor, reduceOp: str, group_size: int, group_name: str, gradient_division: bool
) -> torch.Tensor:
    """Chunk r (of W equal dim-0 chunks) reduced over ranks with ``reduceOp`` (sum/avg/product/min/max) into rank r."""
    op = reduceOp.lower()
    if op not in _LOCAL_REDUCE:
        raise ValueError(f"reduce_scatter_tensor: unsupported reduceOp {reduceOp!r}; expected one of {sorted(_LOCAL_REDUCE)}")
    if op in ("sum", "avg"):
        out = _sum_scatter_dim0(input, group_size, group_name)
        return out / group_size if op == "avg" else out
    group = _resolve(group_name)
    if input.size(0) % group_size != 0:
        raise ValueError(f"reduce_scatter_tensor: input.size(0)={input.size(0)} must split over group_size={group_size}")
    chunks = list(input.contiguous().chunk(group_size, 0))
    received = all_to_all_chunks(chunks, [chunks[0].shape] * group_size, group).wait()
    return _LOCAL_REDUCE[op](torch.stack(received))  # type: ignore[arg-type]


@reduce_scatter_tensor.register_fake
def reduce_scatter_tensor_fake(
    input: torch.Tensor, reduceOp: str, group_size: int, group_name: str, gradient_division: bool
) -> torch.Tensor:
    size = list(input.size())
    size[0] //= group_size
    return input.new_empty(size)


def reduce_scatter_tensor_setup_context(ctx: Any, inputs: Tuple[Any, ...], output: torch.Tensor) -> None:
    _, _, group_size, group_name, gradient_division = inputs
    ctx.group_size = group_size
    ctx.group_name = group_name
    ctx.gradient_division = gradient_division


def reduce_scatter_tensor_backward(ctx: Any, grad: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:
    """All-gather of the gradient chunks (÷ W when ``gradient_division``): the transpose of a summed scatter."""
    out = _gather_dim0(grad, ctx.group_size, ctx.group_name)
    if ctx.gradient_division:
        out = out / ctx.group_size
    return out, None, None, None, None


reduce_scatter_tensor.register_autograd(reduce_scatter_tensor_backward, setup_context=reduce_scatter_tensor_setup_context)
