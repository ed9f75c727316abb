"""Autograd-aware collectives for embedding outputs (TorchRec's ``comm_ops``).

Every function issues its collective asynchronously and returns an ``Awaitable`` (a ``Request``);
``wait()`` gives the result, connected to autograd: backward runs the transposed collective
(all-to-all ↔ all-to-all with swapped splits, reduce-scatter ↔ all-gather). When gradient division
is on (the default, ``set_gradient_division``), gradients sent back are divided by the world size,
matching DDP's averaging of dense gradients.

Where a backend lacks a collective, ``_collectives/primitives`` uses a documented fallback with the same
result (gloo: reduce-scatter as all-to-all + local sum; unequal all-gather as all-to-all; all-gathers of
1 MiB or more as one broadcast per rank, see ``AllGatherMode``).
``count_collectives(group)`` counts what was issued, for tests.

Shape glossary: ``W`` world size, ``B_r`` batch rows owned by rank r, ``D_r`` pooled width on rank r.
"""

import contextlib
from typing import Any, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._collectives.counter import CollectiveCounter, count_collectives  # noqa: F401
from recsys_lib.distributed._collectives.primitives import AllGatherMode, CollectivePolicy, ReduceScatterMode  # noqa: F401
from recsys_lib.distributed._collectives.autograd import (  # noqa: F401
    AllGatherVOp,
    FlatAllToAllOp,
    PooledAllToAllOp,
    ReduceScatterVOp,
    Request,
    SequenceAllToAllOp,
    issue,
    permute_segments,
)
from recsys_lib.distributed._collectives.infos import (  # noqa: F401
    AllGatherBaseInfo,
    All2AllDenseInfo,
    All2AllPooledInfo,
    All2AllSequenceInfo,
    All2AllVInfo,
    ReduceScatterBaseInfo,
    ReduceScatterInfo,
    ReduceScatterVInfo,
    VariableBatchAll2AllPooledInfo,
)
from recsys_lib.distributed.global_settings import process_settings


def set_gradient_division(val: bool) -> None:
    """Divide embedding gradients by the world size in backward (default True). Read when a collective is issued."""
    process_settings().gradient_division = bool(val)


def get_gradient_division() -> bool:
    return process_settings().gradient_division


def set_use_sync_collectives(val: bool) -> None:
    """Accepted for API compatibility: collectives here are always issued async and waited by the awaitable."""
    process_settings().use_sync_collectives = bool(val)


def get_use_sync_collectives() -> bool:
    return process_settings().use_sync_collectives


@contextlib.contextmanager
def torchrec_use_sync_collectives() -> Iterator[None]:
    """Context manager setting ``use_sync_collectives`` inside the block."""
    old = get_use_sync_collectives()
    set_use_sync_collectives(True)
    try:
        yield
    finally:
        set_use_sync_collectives(old)


def _group(group: Optional[dist.ProcessGroup]) -> dist.ProcessGroup:
    if not dist.is_initialized():
        raise RuntimeError("comm_ops: torch.distributed is not initialised")
    return group if group is not None else dist.group.WORLD  # type: ignore[return-value]


def alltoall_pooled(
    a2a_pooled_embs_tensor: torch.Tensor,
    batch_size_per_rank: List[int],
    dim_sum_per_rank: List[int],
    dim_sum_per_rank_tensor: Optional[torch.Tensor] = None,
    cumsum_dim_sum_per_rank_tensor: Optional[torch.Tensor] = None,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Request:
    """Model-parallel → data-parallel pooled embeddings.

    Input on rank k: ``[ΣB_r, D_k]`` (rows = the global batch, rank r's rows contiguous).
    Output on rank r: ``[B_r, ΣD_k]`` (columns = rank 0's, then rank 1's, ...).
    """
    pg = _group(group)
    op = PooledAllToAllOp(pg, batch_size_per_rank, dim_sum_per_rank, codecs, get_gradient_division())
    return issue(op, a2a_pooled_embs_tensor)


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


def variable_batch_alltoall_pooled(
    a2a_pooled_embs_tensor: torch.Tensor,
    batch_size_per_rank_per_feature: List[List[int]],
    batch_size_per_feature_pre_a2a: List[int],
    emb_dim_per_rank_per_feature: List[List[int]],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Request:
    """Pooled all-to-all with a batch size per (rank, feature); input and output are flat (1-D).

    Input layout (this rank's lookup output): for each destination rank r, for each local feature f,
    ``B[r][f]`` rows of ``D_f``. Output: for each source rank k, for each of k's features, this
    rank's rows. See ``variable_batch_split_sizes``.
    """
    pg = _group(group)
    ins, outs = variable_batch_split_sizes(
        dist.get_rank(pg), batch_size_per_rank_per_feature, batch_size_per_feature_pre_a2a, emb_dim_per_rank_per_feature
    )
    return issue(FlatAllToAllOp(pg, ins, outs, codecs, get_gradient_division()), a2a_pooled_embs_tensor)


def alltoall_sequence(
    a2a_sequence_embs_tensor: torch.Tensor,
    forward_recat_tensor: Optional[torch.Tensor],
    backward_recat_tensor: Optional[torch.Tensor],
    lengths_after_sparse_data_all2all: torch.Tensor,
    input_splits: List[int],
    output_splits: List[int],
    variable_batch_size: bool = False,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    batch_size_per_rank: Optional[List[int]] = None,
) -> Request:
    """Sequence (unpooled) embeddings back to the ranks that own the batch rows.

    Input ``[ids, D]`` in the order of the distributed KJT (feature-major: for each local feature, the
    ids of rank 0's rows, rank 1's rows, ...). ``forward_recat_tensor`` re-orders the (feature, rank)
    segments rank-major; segment sizes come from ``lengths_after_sparse_data_all2all`` (per-sample
    lengths; with ``variable_batch_size`` the rows per rank are ``batch_size_per_rank``). Then
    ``input_splits[r]`` rows go to rank r and ``output_splits[k]`` rows arrive from rank k.
    """
    pg = _group(group)
    segment_lengths: Optional[torch.Tensor] = None
    if forward_recat_tensor is not None:
        n_seg = int(forward_recat_tensor.numel())
        lengths = lengths_after_sparse_data_all2all.to(torch.long)
        if variable_batch_size:
            if batch_size_per_rank is None:
                raise ValueError("alltoall_sequence: variable_batch_size=True needs batch_size_per_rank")
            w = len(batch_size_per_rank)
            if n_seg % w != 0:
                raise ValueError(f"alltoall_sequence: {n_seg} segments do not split over {w} ranks")
            counts = torch.tensor(batch_size_per_rank * (n_seg // w), dtype=torch.long)
            seg_ids = torch.repeat_interleave(torch.arange(n_seg), counts, output_size=int(counts.sum()))
            if seg_ids.numel() != lengths.numel():
                raise ValueError(
                    f"alltoall_sequence: {lengths.numel()} lengths, expected {seg_ids.numel()} from batch_size_per_rank"
                )
            segment_lengths = torch.zeros(n_seg, dtype=torch.long).index_add_(0, seg_ids, lengths)
        else:
            if lengths.numel() % n_seg != 0:
                raise ValueError(
                    f"alltoall_sequence: {lengths.numel()} lengths do not split into {n_seg} equal segments"
                )
            segment_lengths = lengths.view(n_seg, -1).sum(1)
    op = SequenceAllToAllOp(pg, input_splits, output_splits, forward_recat_tensor, backward_recat_tensor,
                            segment_lengths, codecs, get_gradient_division())
    return issue(op, a2a_sequence_embs_tensor)


def reduce_scatter_pooled(
    inputs: List[torch.Tensor],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Request:
    """Rank r receives ``Σ_k inputs[r]`` of rank k (``inputs[r]`` may differ in shape across r)."""
    pg = _group(group)
    w, me = dist.get_world_size(pg), dist.get_rank(pg)
    if len(inputs) != w:
        raise ValueError(f"reduce_scatter_pooled: {len(inputs)} inputs, expected one per rank ({w})")
    flat = torch.cat([t.reshape(-1) for t in inputs])
    splits = [int(t.numel()) for t in inputs]
    req = issue(ReduceScatterVOp(pg, splits, codecs, get_gradient_division(), policy), flat)
    req.callbacks.append(lambda out: out.view(inputs[me].shape))
    return req


def reduce_scatter_base_pooled(
    input: torch.Tensor,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Request:
    """``input`` = W equal dim-0 chunks; rank r receives the sum over ranks of chunk r."""
    pg = _group(group)
    w = dist.get_world_size(pg)
    if input.size(0) % w != 0:
        raise ValueError(f"reduce_scatter_base_pooled: input.size(0)={input.size(0)} is not divisible by {w} ranks")
    splits = [input.size(0) // w] * w
    return issue(ReduceScatterVOp(pg, splits, codecs, get_gradient_division(), policy), input)


def reduce_scatter_v_pooled(
    input: torch.Tensor,
    input_splits: List[int],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Request:
    """Like ``reduce_scatter_base_pooled`` with dim-0 chunk sizes ``input_splits`` (row-wise sharding, uneven batches)."""
    pg = _group(group)
    return issue(ReduceScatterVOp(pg, input_splits, codecs, get_gradient_division(), policy), input)


def reduce_scatter_v_per_feature_pooled(
    input: torch.Tensor,
    batch_size_per_rank_per_feature: List[List[int]],
    embedding_dims: List[int],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Request:
    """Variable-batch reduce-scatter of a flat input laid out [rank][feature][row][dim]."""
    pg = _group(group)
    splits = []
    for r, per_feature in enumerate(batch_size_per_rank_per_feature):
        if len(per_feature) != len(embedding_dims):
            raise ValueError(
                f"batch_size_per_rank_per_feature[{r}] has {len(per_feature)} entries, expected {len(embedding_dims)}"
            )
        splits.append(sum(b * d for b, d in zip(per_feature, embedding_dims)))
    return issue(ReduceScatterVOp(pg, splits, codecs, get_gradient_division(), policy), input)


def all_gather_base_pooled(
    input: torch.Tensor,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    policy: Optional[CollectivePolicy] = None,
) -> Request:
    """Concatenates every rank's (equal-shaped) ``input`` along dim 0; backward reduce-scatters the grads."""
    pg = _group(group)
    sizes = [input.size(0)] * dist.get_world_size(pg)
    return issue(AllGatherVOp(pg, sizes, codecs, get_gradient_division(), policy), input)


# Synchronous forms (TorchRec's ``*_sync``, used under ``torchrec_use_sync_collectives``): the same collective,
# waited on at once; the result stays connected to autograd like the asynchronous one.


def pg_name(pg: dist.ProcessGroup) -> str:
    """The registered name of ``pg`` (what functional collectives take as ``group_name``)."""
    return dist.distributed_c10d._get_process_group_name(pg)


def all2all_pooled_sync(pg: dist.ProcessGroup, a2ai: All2AllPooledInfo, input_embeddings: torch.Tensor) -> torch.Tensor:
    """``alltoall_pooled`` waited: ``[ΣB_r, D_me]`` → ``[B_me, ΣD_k]``."""
    return alltoall_pooled(
        input_embeddings,
        a2ai.batch_size_per_rank,
        a2ai.dim_sum_per_rank,
        a2ai.dim_sum_per_rank_tensor,
        a2ai.cumsum_dim_sum_per_rank_tensor,
        pg,
        a2ai.codecs,
    ).wait()


def variable_batch_all2all_pooled_sync(
    pg: dist.ProcessGroup, a2ai: VariableBatchAll2AllPooledInfo, input_embeddings: torch.Tensor
) -> torch.Tensor:
    """``variable_batch_alltoall_pooled`` waited (flat input and output)."""
    return variable_batch_alltoall_pooled(
        input_embeddings,
        a2ai.batch_size_per_rank_per_feature,
        a2ai.batch_size_per_feature_pre_a2a,
        a2ai.emb_dim_per_rank_per_feature,
        pg,
        a2ai.codecs,
    ).wait()


def all2all_sequence_sync(
    pg: dist.ProcessGroup, a2ai: All2AllSequenceInfo, sharded_input_embeddings: torch.Tensor
) -> torch.Tensor:
    """``alltoall_sequence`` waited: ``[ids, D]`` in distributed-KJT order → this rank's rows' embeddings."""
    return alltoall_sequence(
        sharded_input_embeddings,
        a2ai.forward_recat_tensor,
        a2ai.backward_recat_tensor,
        a2ai.lengths_after_sparse_data_all2all,
        a2ai.input_splits,
        a2ai.output_splits,
        a2ai.variable_batch_size,
        pg,
        a2ai.codecs,
    ).wait()


def reduce_scatter_sync(pg: dist.ProcessGroup, rsi: ReduceScatterInfo, *inputs: Any) -> torch.Tensor:
    """``reduce_scatter_pooled`` waited: rank r gets ``Σ_k inputs[r]`` of rank k."""
    return reduce_scatter_pooled(list(inputs), pg, rsi.codecs).wait()


def reduce_scatter_base_sync(pg: dist.ProcessGroup, rsi: ReduceScatterBaseInfo, inputs: torch.Tensor) -> torch.Tensor:
    """``reduce_scatter_base_pooled`` waited: W equal dim-0 chunks, rank r gets the sum of chunk r."""
    return reduce_scatter_base_pooled(inputs, pg, rsi.codecs).wait()


def all_gather_base_sync(pg: dist.ProcessGroup, agi: AllGatherBaseInfo, input: torch.Tensor) -> torch.Tensor:
    """``all_gather_base_pooled`` waited: every rank's ``input`` concatenated along dim 0."""
    return all_gather_base_pooled(input, pg, agi.codecs).wait()


def reduce_scatter_v_sync(pg: dist.ProcessGroup, rsi: ReduceScatterVInfo, input: torch.Tensor) -> torch.Tensor:
    """``reduce_scatter_v_pooled`` waited: dim-0 chunks of sizes ``rsi.input_splits``."""
    return reduce_scatter_v_pooled(input, rsi.input_splits, pg, rsi.codecs).wait()
