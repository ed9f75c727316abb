"""Sequence (unpooled) batched kernels: one embedding row per id, for ``EmbeddingCollection`` shards.

``forward(features)`` returns the rows of every id in KJT value order (feature-major)::

    features  f0 (t0)   f1 (t1)
    sample 0  [3, 1]    [0]
    sample 1  []        [2, 5]     ->  out = [t0[3], t0[1], t1[0], t1[2], t1[5]]     T[N=5, D]

When the tables of the kernel have different dims the rows cannot stack: the output is the flat
concatenation ``T[sum_f L_f * D_f]`` in the same order.

How each case runs (FBGEMM's CPU kernels have two gaps, so the CPU paths are our own where needed):

=======================  =======================================  =========================================
kernel, dims             CPU                                      CUDA
=======================  =======================================  =========================================
fused, equal dims        TBE, ``PoolingMode.NONE``                TBE, ``PoolingMode.NONE``
fused, mixed dims        TBE in SUM mode, one id per bag          same
dense, equal dims        ``F.embedding`` on the flat weight       dense TBE, ``PoolingMode.NONE``
dense, mixed dims        ``F.embedding`` per table view           same as CPU
=======================  =======================================  =========================================

FBGEMM's CPU TBE accepts ``PoolingMode.NONE`` only for equal dims, and its CPU *dense* TBE ignores NONE and
silently pools. "One id per bag" turns a sequence lookup into a pooled one whose bags hold exactly one id:
pooling a single row returns that row, and the fused optimizer runs unchanged in FBGEMM's backward (exact,
duplicates included). Every feature gets ``max_f L_f`` bags, the first ``L_f`` holding one id each and the
rest empty (zero rows, no gradient); the useful rows are cut out of the ``[max_f L_f, sum_f D_f]`` output.
When that padding would exceed :data:`MAX_PADDING_RATIO` times the useful output, FBGEMM's variable-batch
form (``batch_size_per_feature = L_f``, no padding) is used instead. On CPU this costs ~5x (padded) to ~15x
(variable batch) the time of the NONE path, because FBGEMM's CPU kernels pay per bag.
"""

from typing import Any, List, Optional

import torch
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._tbe.sequence_ref import sequence_lookup_reference
from recsys_lib.distributed._tbe.pooled import check_features, tbe_indices_offsets
from recsys_lib.distributed._tbe.kernel import DenseTableBatchMethods, FusedTableBatchMethods, TableBatchMethods
from recsys_lib.distributed.embedding_kernel import BaseEmbedding
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.optim.fused import FusedOptimizerModule


# Padding to max_f L_f bags per feature produces max_f L_f * sum_f D_f output values for sum_f L_f * D_f
# useful ones; past this ratio the variable-batch form is used.
MAX_PADDING_RATIO = 4.0


def one_id_per_bag_mode(length_per_key: List[int], dims: List[int]) -> str:
    """``"padded"`` or ``"variable_batch"``: how :func:`one_id_per_bag_lookup` lays out the bags."""
    useful = sum(n * d for n, d in zip(length_per_key, dims))
    padded = (max(length_per_key) if length_per_key else 0) * sum(dims)
    if useful == 0 or padded > MAX_PADDING_RATIO * useful:
        return "variable_batch"
    return "padded"


def one_id_per_bag_lookup(
    tbe: nn.Module, indices: torch.Tensor, length_per_key: List[int], dims: List[int]
) -> torch.Tensor:
    """Sequence rows (flat, feature-major) from a SUM-pooling TBE whose bags each hold one id.

    Args:
        tbe: FBGEMM training TBE in ``PoolingMode.SUM``; ``indices``: the ids, feature-major;
        length_per_key: ``L_f``; dims: ``D_f`` of each feature's table.
    """
    if one_id_per_bag_mode(length_per_key, dims) == "variable_batch":
        bags = torch.arange(indices.numel() + 1, dtype=indices.dtype, device=indices.device)
        sizes = [[n] for n in length_per_key]
        return tbe(indices=indices, offsets=bags, batch_size_per_feature_per_rank=sizes).view(-1)
    max_len = max(length_per_key)
    lengths = torch.tensor(length_per_key, device=indices.device)
    bag_sizes = (torch.arange(max_len, device=indices.device).unsqueeze(0) < lengths.unsqueeze(1)).reshape(-1)
    offsets = torch.zeros(bag_sizes.numel() + 1, dtype=indices.dtype, device=indices.device)
    offsets[1:] = torch.cumsum(bag_sizes, 0)
    pooled = tbe(indices=indices, offsets=offsets)  # [max_len, sum_f D_f]
    pieces, col = [], 0
    for n, d in zip(length_per_key, dims):
        pieces.append(pooled[:n, col : col + d].reshape(-1))
        col += d
    return torch.cat(pieces)


def _feature_offsets(features: Any, indices: torch.Tensor) -> torch.Tensor:
    """Offsets with one bag per feature: ``[0, L_0, L_0 + L_1, ...]`` (works for any batch layout)."""
    lengths = torch.tensor([0] + features.length_per_key(), dtype=indices.dtype, device=indices.device)
    return torch.cumsum(lengths, 0)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BaseBatchedEmbedding(TableBatchMethods, BaseEmbedding):
    """Sequence kernel over one TBE (subclasses create ``self._emb_module`` and ``self._batch``).

    Args:
        config: the tables of this kernel (local shard shapes in ``local_rows``/``local_cols``).
        pg: process group of the sharding (state dicts become ShardedTensors with it).
        device: where the tables live (default cpu).
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        super().__init__()
        self._init_fields(config, pg, device, None)
        self._dim = self._layout.uniform_dim


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BatchedFusedEmbedding(FusedTableBatchMethods, BaseBatchedEmbedding, FusedOptimizerModule):
    """Sequence kernel with the optimizer fused into backward (see the module table for the paths).

    Example::

        kernel = BatchedFusedEmbedding(grouped_config)   # equal dims D
        rows = kernel(kjt)                               # [N, D], N = number of ids
        rows.sum().backward()                            # rows updated in backward
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

        super().__init__(config, pg, device)
        # Mixed dims: pooled TBE with one id per bag (FBGEMM's NONE mode needs equal dims on CPU).
        self._one_id_per_bag = self._dim is None
        self._build_tables(PoolingMode.SUM if self._one_id_per_bag else PoolingMode.NONE)

    def forward(self, features: Any) -> torch.Tensor:
        check_features(features, self._layout, self._check_ids)
        indices, offsets = tbe_indices_offsets(features)
        if self._one_id_per_bag:
            dims = [self._layout.cols[t] for t in self._layout.feature_table_map]
            return one_id_per_bag_lookup(self._emb_module, indices, features.length_per_key(), dims)
        if features.variable_stride_per_key():
            offsets = _feature_offsets(features, indices)
        return self._emb_module(indices=indices, offsets=offsets)

    def wait_for_forward(self) -> None:
        """Waits for an asynchronous forward kernel (Triton TBEs record one); returns at once for FBGEMM's."""
        wait = getattr(self._emb_module, "wait_for_forward", None)
        if wait is not None:
            wait()


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BatchedDenseEmbedding(DenseTableBatchMethods, BaseBatchedEmbedding):
    """Sequence kernel with a plain autograd weight (the dense TBE's flat ``weights`` parameter).

    On CPU (and for mixed dims) the lookup is ``F.embedding`` over views of that parameter, so gradients
    are exact; FBGEMM's CPU dense TBE would silently pool instead.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

        super().__init__(config, pg, device)
        self._use_tbe = self._device.type == "cuda" and self._dim is not None
        self._build_tables(PoolingMode.NONE)

    def forward(self, features: Any) -> torch.Tensor:
        check_features(features, self._layout, self._check_ids)
        if self._use_tbe and not features.variable_stride_per_key():
            indices, offsets = tbe_indices_offsets(features)
            return self._emb_module(indices=indices, offsets=offsets)
        rows = sequence_lookup_reference(
            self._emb_module.weights, self._layout, features.values(), features.length_per_key()
        )
        # FP16/BF16 tables return FP32 rows, as the TBE paths do.
        return rows if rows.dtype == torch.float32 else rows.float()
