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

from recsys_lib.distributed._core.awaitable import Awaitable
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
from recsys_lib.distributed._collectives.functional import (  # noqa: F401
    All2AllSingle,
    AllToAllSingle,
    Comm,
    DefaultAll2AllSingle,
    DefaultAllocMixin,
    all_gather_into_tensor,
    all_gather_into_tensor_backward,
    all_gather_into_tensor_fake,
    all_gather_into_tensor_setup_context,
    reduce_scatter_tensor,
    reduce_scatter_tensor_backward,
    reduce_scatter_tensor_fake,
    reduce_scatter_tensor_setup_context,
)
from recsys_lib.distributed._collectives.functions import (  # noqa: F401
    All2All_Pooled_Req,
    All2All_Pooled_Wait,
    All2All_Seq_Req,
    All2All_Seq_Req_Wait,
    All2Allv_Req,
    All2Allv_Wait,
    AllGatherBase_Req,
    AllGatherBase_Wait,
    ReduceScatter_Req,
    ReduceScatter_Wait,
    ReduceScatterBase_Req,
    ReduceScatterBase_Wait,
    ReduceScatterV_Req,
    ReduceScatterV_Wait,
    Variable_Batch_All2All_Pooled_Req,
    Variable_Batch_All2All_Pooled_Wait,
    sequence_segment_lengths,
    variable_batch_split_sizes,
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
    all_to_all_single_comm: Optional[All2AllSingle] = None,
) -> Awaitable[torch.Tensor]:
    """Model-parallel → data-parallel pooled embeddings.

    Input on rank k: ``[ΣB_r, D_k]`` (rows = the global batch, rank r's rows contiguous).
    Output on rank r: ``[B_r, ΣD_k]`` (columns = rank 0's, then rank 1's, ...).
    ``all_to_all_single_comm`` replaces ``dist.all_to_all_single`` (and its buffer allocation).
    """
    pg = _group(group)
    a2ai = All2AllPooledInfo(batch_size_per_rank, dim_sum_per_rank, dim_sum_per_rank_tensor,
                             cumsum_dim_sum_per_rank_tensor, codecs)
    myreq = Request(pg, a2a_pooled_embs_tensor.device)
    All2All_Pooled_Req.apply(pg, myreq, a2ai, a2a_pooled_embs_tensor, all_to_all_single_comm)
    return myreq


def variable_batch_alltoall_pooled(
    a2a_pooled_embs_tensor: torch.Tensor,
    batch_size_per_rank_per_feature: List[List[int]],
    batch_size_per_feature_pre_a2a: List[int],
    emb_dim_per_rank_per_feature: List[List[int]],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
    all_to_all_single_comm: Optional[All2AllSingle] = None,
) -> Awaitable[torch.Tensor]:
    """Pooled all-to-all with a batch size per (rank, feature); input and output are flat (1-D).

    Input layout (this rank's lookup output): for each destination rank r, for each local feature f,
    ``B[r][f]`` rows of ``D_f``. Output: for each source rank k, for each of k's features, this
    rank's rows. See ``variable_batch_split_sizes``.
    """
    pg = _group(group)
    a2ai = VariableBatchAll2AllPooledInfo(batch_size_per_rank_per_feature, batch_size_per_feature_pre_a2a,
                                          emb_dim_per_rank_per_feature, codecs)
    myreq = Request(pg, a2a_pooled_embs_tensor.device)
    Variable_Batch_All2All_Pooled_Req.apply(pg, myreq, a2ai, a2a_pooled_embs_tensor, all_to_all_single_comm)
    return myreq


def alltoall_sequence(
    a2a_sequence_embs_tensor: torch.Tensor,
    forward_recat_tensor: torch.Tensor,
    backward_recat_tensor: torch.Tensor,
    lengths_after_sparse_data_all2all: torch.Tensor,
    input_splits: List[int],
    output_splits: List[int],
    variable_batch_size: bool = False,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """Sequence (unpooled) embeddings back to the ranks that own the batch rows.

    ``input_splits`` / ``output_splits`` are the splits of the sparse-feature all-to-all that brought the ids
    here (ids sent to / received from each rank), so this sends ``output_splits[r]`` rows to rank r and
    receives ``input_splits[k]`` rows from rank k.

    Input ``[ids, D]`` in the order of the distributed KJT (feature-major: for each local feature, the ids of
    rank 0's rows, rank 1's rows, ...). ``forward_recat_tensor`` first re-orders the segments rank-major:
    with a fixed batch a segment is one (feature, rank) run of ``lengths_after_sparse_data_all2all``; with
    ``variable_batch_size`` the recat indexes the per-sample lengths (each sample a segment). ``None``: rows
    already in send order.
    """
    pg = _group(group)
    a2ai = All2AllSequenceInfo(
        embedding_dim=a2a_sequence_embs_tensor.size(1) if a2a_sequence_embs_tensor.dim() == 2 else 0,
        lengths_after_sparse_data_all2all=lengths_after_sparse_data_all2all,
        forward_recat_tensor=forward_recat_tensor,
        backward_recat_tensor=backward_recat_tensor,
        input_splits=input_splits,
        output_splits=output_splits,
        variable_batch_size=variable_batch_size,
        codecs=codecs,
    )
    myreq = Request(pg, a2a_sequence_embs_tensor.device)
    All2All_Seq_Req.apply(pg, myreq, a2ai, a2a_sequence_embs_tensor)
    return myreq


def _reduce_scatter_request(group: Optional[dist.ProcessGroup], device: torch.device,
                            policy: Optional[CollectivePolicy]) -> Tuple[dist.ProcessGroup, Request]:
    pg = _group(group)
    myreq = Request(pg, device)
    myreq.policy = policy
    return pg, myreq


def reduce_scatter_pooled(
    inputs: List[torch.Tensor],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """Rank r receives ``Σ_k inputs[r]`` of rank k (``inputs[r]`` may differ in shape across r)."""
    return issue_reduce_scatter_pooled(inputs, group, codecs, None)


def issue_reduce_scatter_pooled(inputs: List[torch.Tensor], group: Optional[dist.ProcessGroup],
                                codecs: Optional[QuantizedCommCodecs], policy: Optional[CollectivePolicy]) -> Request:
    """``reduce_scatter_pooled`` with an explicit ``CollectivePolicy`` (None: per backend)."""
    if not inputs:
        raise ValueError("reduce_scatter_pooled: no inputs")
    pg, myreq = _reduce_scatter_request(group, inputs[0].device, policy)
    ReduceScatter_Req.apply(pg, myreq, ReduceScatterInfo([t.size() for t in inputs], codecs), *inputs)
    return myreq


def reduce_scatter_base_pooled(
    input: torch.Tensor,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """``input`` = W equal dim-0 chunks; rank r receives the sum over ranks of chunk r."""
    return issue_reduce_scatter_base_pooled(input, group, codecs, None)


def issue_reduce_scatter_base_pooled(input: torch.Tensor, group: Optional[dist.ProcessGroup],
                                     codecs: Optional[QuantizedCommCodecs], policy: Optional[CollectivePolicy]) -> Request:
    """``reduce_scatter_base_pooled`` with an explicit ``CollectivePolicy`` (None: per backend)."""
    pg, myreq = _reduce_scatter_request(group, input.device, policy)
    ReduceScatterBase_Req.apply(pg, myreq, ReduceScatterBaseInfo(input.size(), codecs), input)
    return myreq


def _rsv_info(input: torch.Tensor, input_splits: List[int], codecs: Optional[QuantizedCommCodecs]) -> ReduceScatterVInfo:
    rest = list(input.shape[1:])
    return ReduceScatterVInfo(
        input_sizes=[[n] + rest for n in input_splits], input_splits=list(input_splits),
        equal_splits=len(set(input_splits)) <= 1, total_input_size=list(input.shape), codecs=codecs,
    )


def reduce_scatter_v_pooled(
    input: torch.Tensor,
    input_splits: List[int],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """Like ``reduce_scatter_base_pooled`` with dim-0 chunk sizes ``input_splits`` (row-wise sharding, uneven batches)."""
    return issue_reduce_scatter_v_pooled(input, input_splits, group, codecs, None)


def issue_reduce_scatter_v_pooled(input: torch.Tensor, input_splits: List[int], group: Optional[dist.ProcessGroup],
                                  codecs: Optional[QuantizedCommCodecs], policy: Optional[CollectivePolicy]) -> Request:
    """``reduce_scatter_v_pooled`` with an explicit ``CollectivePolicy`` (None: per backend)."""
    pg, myreq = _reduce_scatter_request(group, input.device, policy)
    ReduceScatterV_Req.apply(pg, myreq, _rsv_info(input, input_splits, codecs), input)
    return myreq


def reduce_scatter_v_per_feature_pooled(
    input: torch.Tensor,
    batch_size_per_rank_per_feature: List[List[int]],
    embedding_dims: List[int],
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """Variable-batch reduce-scatter of a flat input laid out [rank][feature][row][dim]."""
    return issue_reduce_scatter_v_per_feature_pooled(input, batch_size_per_rank_per_feature, embedding_dims, group,
                                                     codecs, None)


def issue_reduce_scatter_v_per_feature_pooled(
    input: torch.Tensor, batch_size_per_rank_per_feature: List[List[int]], embedding_dims: List[int],
    group: Optional[dist.ProcessGroup], codecs: Optional[QuantizedCommCodecs], policy: Optional[CollectivePolicy],
) -> Request:
    """``reduce_scatter_v_per_feature_pooled`` with an explicit ``CollectivePolicy`` (None: per backend)."""
    splits = []
    for r, per_feature in enumerate(batch_size_per_rank_per_feature):
        if len(per_feature) != len(embedding_dims):
            raise ValueError(
                f"batch_size_per_rank_per_feature[{r}] has {len(per_feature)} entries, expected {len(embedding_dims)}"
            )
        splits.append(sum(b * d for b, d in zip(per_feature, embedding_dims)))
    return issue_reduce_scatter_v_pooled(input, splits, group, codecs, policy)


def all_gather_base_pooled(
    input: torch.Tensor,
    group: Optional[dist.ProcessGroup] = None,
    codecs: Optional[QuantizedCommCodecs] = None,
) -> Awaitable[torch.Tensor]:
    """Concatenates every rank's (equal-shaped) ``input`` along dim 0; backward reduce-scatters the grads."""
    return issue_all_gather_base_pooled(input, group, codecs, None)


def issue_all_gather_base_pooled(input: torch.Tensor, group: Optional[dist.ProcessGroup],
                                 codecs: Optional[QuantizedCommCodecs], policy: Optional[CollectivePolicy]) -> Request:
    """``all_gather_base_pooled`` with an explicit ``CollectivePolicy`` (None: per backend)."""
    pg, myreq = _reduce_scatter_request(group, input.device, policy)
    AllGatherBase_Req.apply(pg, myreq, AllGatherBaseInfo(input.size(), codecs), input)
    return myreq


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
