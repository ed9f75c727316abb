"""Descriptions of one collective call (sizes and codecs), kept by the autograd functions for backward.

Shape glossary: ``W`` world size, ``B`` batch, ``D`` embedding dim.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class All2AllPooledInfo:
    """Pooled all-to-all: rank ``r`` gets rows ``batch_size_per_rank[r]`` of every rank's ``[ΣB, D_k]`` output.

    Args:
        batch_size_per_rank: ``B_r`` of each rank (rows of the global batch it owns).
        dim_sum_per_rank: ``D_k``, total pooled width computed by rank ``k``.
    """

    batch_size_per_rank: List[int]
    dim_sum_per_rank: List[int]
    dim_sum_per_rank_tensor: Optional[torch.Tensor]
    cumsum_dim_sum_per_rank_tensor: Optional[torch.Tensor]
    codecs: Optional[QuantizedCommCodecs] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class VariableBatchAll2AllPooledInfo:
    """Pooled all-to-all with a batch size per (rank, feature) (variable batch per feature, VBE).

    Args:
        batch_size_per_rank_per_feature: ``[r][f]`` batch from rank ``r`` for this rank's local feature ``f``.
        batch_size_per_feature_pre_a2a: this rank's batch per feature, all ranks' features in rank order.
        emb_dim_per_rank_per_feature: ``[k][f]`` pooled dim of rank ``k``'s feature ``f``.
    """

    batch_size_per_rank_per_feature: List[List[int]]
    batch_size_per_feature_pre_a2a: List[int]
    emb_dim_per_rank_per_feature: List[List[int]]
    codecs: Optional[QuantizedCommCodecs] = None
    input_splits: Optional[List[int]] = None
    output_splits: Optional[List[int]] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class All2AllSequenceInfo:
    """Sequence (unpooled) all-to-all of ``[ids, D]`` rows, with the key↔rank re-ordering permutations."""

    embedding_dim: int
    lengths_after_sparse_data_all2all: torch.Tensor
    forward_recat_tensor: Optional[torch.Tensor]
    backward_recat_tensor: Optional[torch.Tensor]
    input_splits: List[int]
    output_splits: List[int]
    variable_batch_size: bool = False
    codecs: Optional[QuantizedCommCodecs] = None
    permuted_lengths_after_sparse_data_all2all: Optional[torch.Tensor] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class All2AllVInfo:
    """Generic variable all-to-all of per-rank ``[B_r, D]`` blocks."""

    dims_sum_per_rank: List[int]
    B_global: int
    B_local: int
    B_local_list: List[int]
    D_local_list: List[int]
    input_split_sizes: List[int] = field(default_factory=list)
    output_split_sizes: List[int] = field(default_factory=list)
    codecs: Optional[QuantizedCommCodecs] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class All2AllDenseInfo:
    """Dense all-to-all of equal-shaped tensors."""

    output_splits: List[int]
    batch_size: int
    input_shape: List[int]
    input_splits: List[int]


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterInfo:
    """Reduce-scatter of a list of per-rank tensors (``input_sizes[r]`` = shape of chunk ``r``)."""

    input_sizes: List[torch.Size]
    codecs: Optional[QuantizedCommCodecs] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterBaseInfo:
    """Reduce-scatter of one tensor cut into W equal dim-0 chunks."""

    input_sizes: torch.Size
    codecs: Optional[QuantizedCommCodecs] = None


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class ReduceScatterVInfo:
    """Reduce-scatter of one tensor cut into dim-0 chunks of ``input_splits`` rows."""

    input_sizes: List[List[int]]
    input_splits: List[int]
    equal_splits: bool
    total_input_size: List[int]
    codecs: Optional[QuantizedCommCodecs]


@dataclass
@public_at("recsys_lib.distributed.comm_ops")
class AllGatherBaseInfo:
    """All-gather of equal-shaped tensors along dim 0."""

    input_size: torch.Size
    codecs: Optional[QuantizedCommCodecs] = None
