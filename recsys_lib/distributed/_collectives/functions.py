"""TorchRec's per-collective autograd functions (``comm_ops.All2All_Pooled_Req`` / ``..._Wait`` and friends).

Each collective is framed by a pair of ``torch.autograd.Function``s, called as TorchRec calls them::

    myreq = Request(pg, device)
    All2All_Pooled_Req.apply(pg, myreq, a2ai, x, None)   # issues the all-to-all; fills myreq
    y = myreq.wait()                                      # All2All_Pooled_Wait.apply(pg, myreq, dummy)

``*_Req.forward`` reads the sizes from the info dataclass (``a2ai`` / ``rsi`` / ``agi``), builds the matching
``_CollectiveOp`` of ``_collectives/autograd`` and issues it; ``*_Wait.backward`` issues the transposed
collective on the gradient and ``*_Req.backward`` waits it (so both directions overlap with compute). The
``comm_ops`` functions (``alltoall_pooled`` ...) are these calls.

Gradient division (``comm_ops.set_gradient_division``) is read when the collective is issued.
"""

from typing import Any, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.autograd import (
    AllGatherVOp,
    FlatAllToAllOp,
    PooledAllToAllOp,
    ReduceScatterVOp,
    Request,
    SequenceAllToAllOp,
    finish_request_backward,
    start_request,
    start_request_backward,
    wait_request,
)
from recsys_lib.distributed._collectives.infos import (
    AllGatherBaseInfo,
    All2AllPooledInfo,
    All2AllSequenceInfo,
    All2AllVInfo,
    ReduceScatterBaseInfo,
    ReduceScatterInfo,
    ReduceScatterVInfo,
    VariableBatchAll2AllPooledInfo,
)
from recsys_lib.distributed.global_settings import process_settings


def _division() -> bool:
    return process_settings().gradient_division


def variable_batch_split_sizes(
    rank: int,
    batch_size_per_rank_per_feature: List[List[int]],
    batch_size_per_feature_pre_a2a: List[int],
    emb_dim_per_rank_per_feature: List[List[int]],
) -> Tuple[List[int], List[int]]:
    """Element split sizes of a variable-batch pooled all-to-all on ``rank`` (pure).

    input_splits[r]  = Σ_f B[r][f] · D[rank][f]       (this rank's features, rows of rank r)
    output_splits[k] = Σ_f pre[k's f] · D[k][f]        (rank k's features, this rank's rows)
    """
    dims_me = emb_dim_per_rank_per_feature[rank]
    input_splits = []
    for r, per_feature in enumerate(batch_size_per_rank_per_feature):
        if len(per_feature) != len(dims_me):
            raise ValueError(
                f"batch_size_per_rank_per_feature[{r}] has {len(per_feature)} entries, rank {rank} has "
                f"{len(dims_me)} features"
            )
        input_splits.append(sum(b * d for b, d in zip(per_feature, dims_me)))
    total_features = sum(len(d) for d in emb_dim_per_rank_per_feature)
    if len(batch_size_per_feature_pre_a2a) != total_features:
        raise ValueError(
            f"batch_size_per_feature_pre_a2a has {len(batch_size_per_feature_pre_a2a)} entries, expected "
            f"{total_features} (all ranks' features)"
        )
    output_splits, offset = [], 0
    for dims in emb_dim_per_rank_per_feature:
        output_splits.append(sum(b * d for b, d in zip(batch_size_per_feature_pre_a2a[offset:offset + len(dims)], dims)))
        offset += len(dims)
    return input_splits, output_splits


def sequence_segment_lengths(a2ai: All2AllSequenceInfo) -> Optional[torch.Tensor]:
    """Rows per segment that ``a2ai.forward_recat_tensor`` permutes (``None``: no re-ordering).

    Fixed batch: the per-sample lengths form ``recat.numel()`` equal runs (one per (feature, source rank)), each
    summed. Variable batch: the recat indexes the per-sample lengths themselves (each sample is a segment).
    """
    recat = a2ai.forward_recat_tensor
    if recat is None:
        return None
    lengths = a2ai.lengths_after_sparse_data_all2all.to(torch.long)
    n_seg = int(recat.numel())
    if a2ai.variable_batch_size:
        if lengths.numel() != n_seg:
            raise ValueError(
                f"alltoall_sequence: variable batch needs a per-sample recat ({lengths.numel()} lengths), got "
                f"{n_seg} entries"
            )
        return lengths
    if n_seg == 0 or lengths.numel() % n_seg != 0:
        raise ValueError(f"alltoall_sequence: {lengths.numel()} lengths do not split into {n_seg} equal segments")
    return lengths.view(n_seg, -1).sum(1)


class _RequestWait(torch.autograd.Function):
    """The wait half shared by the ``*_Wait`` functions: forward waits ``myreq``; backward issues the transposed
    collective on the gradient (``*_Req.backward`` waits it)."""

    @staticmethod
    def forward(ctx: Any, pg: dist.ProcessGroup, myreq: Request, *dummy_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return wait_request(ctx, myreq)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, start_request_backward(ctx, grad_output)


@public_at("recsys_lib.distributed.comm_ops")
class All2All_Pooled_Req(torch.autograd.Function):
    """Issues a pooled all-to-all: ``[ΣB_r, D_me]`` → ``[B_me, ΣD_k]`` (sizes from ``a2ai``)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pg: dist.ProcessGroup,
        myreq: Request,
        a2ai: All2AllPooledInfo,
        input_embeddings: torch.Tensor,
        all_to_all_single_comm: Any,
    ) -> torch.Tensor:
        op = PooledAllToAllOp(pg, a2ai.batch_size_per_rank, a2ai.dim_sum_per_rank, a2ai.codecs, _division(),
                              all_to_all_single_comm)
        myreq.a2ai = a2ai
        return start_request(ctx, myreq, op, input_embeddings, All2All_Pooled_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[None, None, None, torch.Tensor, None]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx), None


@public_at("recsys_lib.distributed.comm_ops")
class All2All_Pooled_Wait(_RequestWait):
    """Waits a pooled all-to-all; backward issues the transposed all-to-all of the gradient."""


@public_at("recsys_lib.distributed.comm_ops")
class Variable_Batch_All2All_Pooled_Req(torch.autograd.Function):
    """Issues a variable-batch pooled all-to-all of a flat payload (split sizes from ``a2ai``)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pg: dist.ProcessGroup,
        myreq: Request,
        a2ai: VariableBatchAll2AllPooledInfo,
        input_embeddings: torch.Tensor,
        all_to_all_single_comm: Any,
    ) -> torch.Tensor:
        ins, outs = variable_batch_split_sizes(
            dist.get_rank(pg), a2ai.batch_size_per_rank_per_feature, a2ai.batch_size_per_feature_pre_a2a,
            a2ai.emb_dim_per_rank_per_feature,
        )
        a2ai.input_splits, a2ai.output_splits = ins, outs
        myreq.a2ai = a2ai
        op = FlatAllToAllOp(pg, ins, outs, a2ai.codecs, _division(), all_to_all_single_comm)
        return start_request(ctx, myreq, op, input_embeddings, Variable_Batch_All2All_Pooled_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[None, None, None, torch.Tensor, None]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx), None


@public_at("recsys_lib.distributed.comm_ops")
class Variable_Batch_All2All_Pooled_Wait(_RequestWait):
    """Waits a variable-batch pooled all-to-all; backward sends the gradient back."""


@public_at("recsys_lib.distributed.comm_ops")
class All2All_Seq_Req(torch.autograd.Function):
    """Issues a sequence all-to-all: ``[ids, D]`` rows re-ordered rank-major, ``a2ai.output_splits[r]`` rows to
    rank r, ``a2ai.input_splits[k]`` rows from rank k (the splits of the sparse-feature all-to-all, reversed)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pg: dist.ProcessGroup,
        myreq: Request,
        a2ai: All2AllSequenceInfo,
        sharded_input_embeddings: torch.Tensor,
    ) -> torch.Tensor:
        segments = sequence_segment_lengths(a2ai)
        op = SequenceAllToAllOp(pg, a2ai.output_splits, a2ai.input_splits, a2ai.forward_recat_tensor,
                                a2ai.backward_recat_tensor, segments, a2ai.codecs, _division())
        myreq.a2ai = a2ai
        return start_request(ctx, myreq, op, sharded_input_embeddings, All2All_Seq_Req_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[None, None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx)


@public_at("recsys_lib.distributed.comm_ops")
class All2All_Seq_Req_Wait(_RequestWait):
    """Waits a sequence all-to-all; backward sends the gradient rows back (and undoes the re-ordering)."""

    @staticmethod
    def backward(ctx: Any, sharded_grad_output: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, start_request_backward(ctx, sharded_grad_output)


@public_at("recsys_lib.distributed.comm_ops")
class All2Allv_Req(torch.autograd.Function):
    """Issues an all-to-all of per-rank row blocks: ``inputs`` (each ``[B_global, D_i]``) are concatenated by
    columns; ``a2ai.B_local_list[r]`` rows go to rank r; rank k's ``[B_local, dims_sum_per_rank[k]]`` block arrives.

    ``inputs`` is a list, which autograd does not track (as in TorchRec): no gradient reaches it.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        pg: dist.ProcessGroup,
        myreq: Request,
        a2ai: All2AllVInfo,
        inputs: List[torch.Tensor],
    ) -> torch.Tensor:
        width = sum(a2ai.D_local_list)
        a2ai.input_split_sizes = [m * width for m in a2ai.B_local_list]
        a2ai.output_split_sizes = [a2ai.B_local * e for e in a2ai.dims_sum_per_rank]
        flat = torch.cat(inputs, dim=1).reshape(-1)
        op = FlatAllToAllOp(pg, a2ai.input_split_sizes, a2ai.output_split_sizes, a2ai.codecs, _division())
        myreq.a2ai = a2ai
        return start_request(ctx, myreq, op, flat, All2Allv_Wait)

    @staticmethod
    def backward(ctx: Any, *grad_output: torch.Tensor) -> Tuple[None, None, None, None]:  # type: ignore[override]
        finish_request_backward(ctx)  # completes the exchange; the list input takes no gradient
        return None, None, None, None


@public_at("recsys_lib.distributed.comm_ops")
class All2Allv_Wait(torch.autograd.Function):
    """Waits an ``All2Allv_Req``; returns one ``[B_local, dims_sum_per_rank[k]]`` tensor per source rank k."""

    @staticmethod
    def forward(ctx: Any, pg: dist.ProcessGroup, myreq: Request, *dummy_tensor: torch.Tensor) -> Tuple[torch.Tensor, ...]:  # type: ignore[override]
        a2ai: All2AllVInfo = myreq.a2ai
        flat = wait_request(ctx, myreq)
        ctx.b_local = a2ai.B_local
        return tuple(t.view(a2ai.B_local, -1) for t in flat.split(a2ai.output_split_sizes))

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        grad = torch.cat([g.contiguous().reshape(-1) for g in grad_outputs])
        return None, None, start_request_backward(ctx, grad)


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatter_Req(torch.autograd.Function):
    """Issues a reduce-scatter of a list of per-rank tensors: rank r receives ``Σ_k inputs[r]`` of rank k."""

    @staticmethod
    def forward(ctx: Any, pg: dist.ProcessGroup, myreq: Request, rsi: ReduceScatterInfo, *inputs: Any) -> torch.Tensor:  # type: ignore[override]
        w = dist.get_world_size(pg)
        if len(inputs) != w:
            raise ValueError(f"reduce_scatter: {len(inputs)} inputs, expected one per rank ({w})")
        rsi.input_sizes = [t.size() for t in inputs]
        ctx.shapes = rsi.input_sizes
        numels = [int(t.numel()) for t in inputs]
        flat = torch.cat([t.reshape(-1) for t in inputs])
        op = ReduceScatterVOp(pg, numels, rsi.codecs, _division(), myreq.policy)
        myreq.rsi = rsi
        return start_request(ctx, myreq, op, flat, ReduceScatter_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        flat = finish_request_backward(ctx)
        grads = [g.view(s) for g, s in zip(flat.split([int(s.numel()) for s in ctx.shapes]), ctx.shapes)]
        return (None, None, None, *grads)


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatter_Wait(torch.autograd.Function):
    """Waits a ``ReduceScatter_Req``; the result has the shape of this rank's input chunk."""

    @staticmethod
    def forward(ctx: Any, pg: dist.ProcessGroup, myreq: Request, *dummy_tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        shape = myreq.rsi.input_sizes[dist.get_rank(pg)]
        return wait_request(ctx, myreq).view(shape)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, start_request_backward(ctx, grad_output.reshape(-1))


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterBase_Req(torch.autograd.Function):
    """Issues a reduce-scatter of one tensor cut into W equal dim-0 chunks."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pg: dist.ProcessGroup, myreq: Request, rsi: ReduceScatterBaseInfo, inputs: torch.Tensor
    ) -> torch.Tensor:
        w = dist.get_world_size(pg)
        if inputs.size(0) % w != 0:
            raise ValueError(f"reduce_scatter_base: input.size(0)={inputs.size(0)} is not divisible by {w} ranks")
        op = ReduceScatterVOp(pg, [inputs.size(0) // w] * w, rsi.codecs, _division(), myreq.policy)
        myreq.rsi = rsi
        return start_request(ctx, myreq, op, inputs, ReduceScatterBase_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx)


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterBase_Wait(_RequestWait):
    """Waits a ``ReduceScatterBase_Req``; backward all-gathers the gradient."""

    @staticmethod
    def forward(ctx: Any, pg: dist.ProcessGroup, myreq: Request, *dummy_Tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return wait_request(ctx, myreq)


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterV_Req(torch.autograd.Function):
    """Issues a reduce-scatter of one tensor cut into dim-0 chunks of ``rsi.input_splits`` rows."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pg: dist.ProcessGroup, myreq: Request, rsi: ReduceScatterVInfo, input: torch.Tensor
    ) -> torch.Tensor:
        op = ReduceScatterVOp(pg, rsi.input_splits, rsi.codecs, _division(), myreq.policy)
        myreq.rsi = rsi
        return start_request(ctx, myreq, op, input, ReduceScatterV_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx)


@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterV_Wait(_RequestWait):
    """Waits a ``ReduceScatterV_Req``; backward all-gathers the (unequal) gradient chunks."""


@public_at("recsys_lib.distributed.comm_ops")
class AllGatherBase_Req(torch.autograd.Function):
    """Issues an all-gather of equal-shaped tensors along dim 0."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, pg: dist.ProcessGroup, myreq: Request, agi: AllGatherBaseInfo, input: torch.Tensor
    ) -> torch.Tensor:
        op = AllGatherVOp(pg, [input.size(0)] * dist.get_world_size(pg), agi.codecs, _division(), myreq.policy)
        myreq.agi = agi
        return start_request(ctx, myreq, op, input, AllGatherBase_Wait)

    @staticmethod
    def backward(ctx: Any, *unused: torch.Tensor) -> Tuple[Optional[torch.Tensor], ...]:  # type: ignore[override]
        return None, None, None, finish_request_backward(ctx)


@public_at("recsys_lib.distributed.comm_ops")
class AllGatherBase_Wait(_RequestWait):
    """Waits an ``AllGatherBase_Req``; backward reduce-scatters the gradient."""

    @staticmethod
    def backward(ctx: Any, grad_outputs: torch.Tensor) -> Tuple[None, None, torch.Tensor]:  # type: ignore[override]
        return None, None, start_request_backward(ctx, grad_outputs)
