"""Pooled batched kernels: one FBGEMM TBE serves every table of a grouped config.

``forward(features)`` takes a KeyedJaggedTensor with the group's features (in group order) and returns
``T[B, sum_f D_f]``: feature ``f``'s pooled rows occupy columns ``[sum_{g<f} D_g, sum_{g<=f} D_g)``::

    features  f0 (t0, D=4)   f1 (t1, D=8)
    sample 0  [3, 1]         [0]            ->  out[0] = [ t0[3]+t0[1] | t1[0] ]
    sample 1  []             [2, 2, 5]      ->  out[1] = [ 0           | t1[2]+t1[2]+t1[5] ]

* :class:`BatchedFusedEmbeddingBag`: ``SplitTableBatchedEmbeddingBagsCodegen``, rows updated inside backward
  by the fused optimizer (``fused_params["optimizer"]``; on CPU exact SGD / Adagrad / row-wise Adagrad). On CPU,
  row-wise Adagrad and SGD over fp32 tables of one dim run ``_tbe/cpu_fused.py`` instead of FBGEMM's kernels (same
  buffers and state, ~1.5x faster train step); other configurations stay on FBGEMM.
* :class:`BatchedDenseEmbeddingBag`: ``DenseTableBatchedEmbeddingBagsCodegen``, one ordinary autograd
  parameter trained by a dense optimizer (data-parallel tables).
"""

from typing import Any, List, Optional, Tuple

import torch
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._tbe.common import TableLayout
from recsys_lib.distributed._tbe.cpu_fused import CpuFusedState, cpu_fast_path_for, fused_lookup
from recsys_lib.distributed._dist.vbe_layout import rank_major_from_uniform
from recsys_lib.distributed._tbe.kernel import DenseTableBatchMethods, FusedTableBatchMethods, TableBatchMethods
from recsys_lib.distributed.embedding_kernel import BaseEmbedding
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.modules.embedding_configs import pooling_type_to_pooling_mode
from recsys_lib.ops.pad_batch import pad_to_uniform_batch
from recsys_lib.optim.fused import FusedOptimizerModule


# ---- per-batch input of a TBE (the sequence kernels use these too) ----


def check_features(features: Any, layout: TableLayout, check_ids: bool) -> None:
    """Raises ``ValueError`` unless ``features`` has one key per kernel feature and, when ``check_ids``,
    every id of feature ``f`` lies in ``[0, rows of its table)``."""
    keys = features.keys()
    if len(keys) != len(layout.feature_table_map):
        raise ValueError(
            f"kernel over tables {list(layout.table_names)} expects {len(layout.feature_table_map)} features "
            f"{list(layout.feature_names)}, got {len(keys)}: {keys}"
        )
    if not check_ids:
        return
    values = features.values()
    if values.numel() == 0:
        return
    if values.is_floating_point() or values.dtype == torch.bool:
        raise TypeError(f"embedding ids must be an integer tensor, got dtype {values.dtype}")
    per_key = values.split(features.length_per_key())
    for f, ids in enumerate(per_key):
        if ids.numel() == 0:
            continue
        lo, hi = torch.aminmax(ids)
        rows = layout.rows[layout.feature_table_map[f]]
        if int(lo) < 0 or int(hi) >= rows:
            bad = int(lo) if int(lo) < 0 else int(hi)
            raise ValueError(
                f"feature {keys[f]!r}: id {bad} is out of range for table {layout.table_of_feature(f)!r} "
                f"with {rows} rows (ids must be in [0, {rows}))"
            )


def tbe_indices_offsets(features: Any) -> Tuple[torch.Tensor, torch.Tensor]:
    """KJT values/offsets in one integer dtype (FBGEMM wants both the same)."""
    indices, offsets = features.values(), features.offsets()
    if indices.dtype != offsets.dtype:
        indices, offsets = indices.long(), offsets.long()
    return indices, offsets


def vbe_batch_sizes(features: Any) -> Optional[List[List[int]]]:
    """``batch_size_per_feature_per_rank`` for a variable-batch KJT, else None."""
    if features.variable_stride_per_key():
        return features.stride_per_key_per_rank()
    return None


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BaseBatchedEmbeddingBag(TableBatchMethods, BaseEmbedding):
    """Pooled kernel over one TBE (subclasses create ``self._emb_module`` and ``self._batch``).

    Args:
        config: the tables of this kernel (local shard shapes in ``local_rows``/``local_cols``).
        pg: process group of the sharding (state dicts become ShardedTensors with it).
        device: where the tables live (default cpu).
        sharding_type: row-split shardings pool MEAN as SUM (the division happens after the reduction).
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
    ) -> None:
        super().__init__()
        self._init_fields(config, pg, device, sharding_type)
        self._pooling_mode = pooling_type_to_pooling_mode(config.pooling, sharding_type)
        # FBGEMM's VBE path builds its metadata with per-row host loops on CPU (~200 ms for 26 features x 512 rows);
        # padding every feature to one batch and cutting the rows out is far cheaper there. CUDA keeps native VBE.
        self._supports_vbe = self._device.type == "cuda"
        # Set by fused kernels whose configuration the CPU fast path serves (see ``_tbe/cpu_fused.py``).
        self._cpu_fast: Optional[CpuFusedState] = None
        self._cpu_fast_placeholder = torch.empty(0, requires_grad=True)

    def _lookup(self, indices: torch.Tensor, offsets: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
        """``(B, sum D)`` pooled rows of a uniform batch: the CPU fast path where it applies, else FBGEMM."""
        if self._cpu_fast is not None and weights is None:
            return fused_lookup(self._cpu_fast_placeholder, self._cpu_fast, indices, offsets)
        return self._emb_module(indices=indices, offsets=offsets, per_sample_weights=weights)

    def forward(
        self,
        features: Any,
        vbe_output: Optional[torch.Tensor] = None,
        vbe_output_offsets: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Pooled rows ``[B, sum D]``; a variable-batch KJT gives the flat rank-major VBE output instead.

        Args:
            features: the group's features (a KeyedJaggedTensor).
            vbe_output / vbe_output_offsets: a preallocated 1-D output and its ``[W, F]`` start offsets; with a
                variable-batch KJT, feature ``f``'s rows for rank ``r`` (``B_{f,r} * D_f`` values) are written at
                ``vbe_output[vbe_output_offsets[r][f]:]`` and ``vbe_output`` is returned.
        """
        check_features(features, self._layout, self._check_ids)
        indices, offsets = tbe_indices_offsets(features)
        weights = None
        if self._config.is_weighted:
            weights = features.weights_or_none()
            if weights is None:
                raise ValueError(f"tables {list(self._layout.table_names)} are weighted but the features have no weights")
        batch_sizes = vbe_batch_sizes(features)
        if (vbe_output is None) != (vbe_output_offsets is None):
            raise ValueError("vbe_output and vbe_output_offsets must be given together")
        if batch_sizes is None:
            if vbe_output is not None:
                raise ValueError("vbe_output is only used with a variable-batch KeyedJaggedTensor")
            return self._lookup(indices, offsets, weights)
        if not self._supports_vbe:
            # Pad every feature to one batch, then cut the rows out (FBGEMM's dense TBE ignores VBE batch sizes).
            padded = pad_to_uniform_batch(features.lengths(), batch_sizes).to(indices.dtype)
            pooled = self._lookup(indices, padded, weights)
            out = rank_major_from_uniform(pooled, batch_sizes, self._config.embedding_dims())
        else:
            out = self._emb_module(
                indices=indices, offsets=offsets, per_sample_weights=weights, batch_size_per_feature_per_rank=batch_sizes
            )
        if vbe_output is None:
            return out
        assert vbe_output_offsets is not None
        return write_vbe_output(out, batch_sizes, self._config.embedding_dims(), vbe_output, vbe_output_offsets)

    def wait_for_forward(self) -> None:
        """Waits for an asynchronous forward kernel (Triton TBEs record one); the FBGEMM kernels are ordered
        on their stream already, so this returns at once for them."""
        wait = getattr(self._emb_module, "wait_for_forward", None)
        if wait is not None:
            wait()


def write_vbe_output(
    out: torch.Tensor,
    batch_per_feature_per_rank: List[List[int]],
    dims: List[int],
    vbe_output: torch.Tensor,
    vbe_output_offsets: torch.Tensor,
) -> torch.Tensor:
    """Copies the rank-major VBE output ``out`` into ``vbe_output`` at ``vbe_output_offsets[r][f]`` (``[W, F]``).

    ``out`` holds, for each rank ``r`` then feature ``f``, ``B_{f,r} * D_f`` values; each block goes to its offset.
    """
    num_features = len(batch_per_feature_per_rank)
    num_ranks = len(batch_per_feature_per_rank[0]) if num_features else 0
    if vbe_output.dim() != 1:
        raise ValueError(f"vbe_output must be 1-D, got shape {list(vbe_output.shape)}")
    if tuple(vbe_output_offsets.shape) != (num_ranks, num_features):
        raise ValueError(
            f"vbe_output_offsets must have shape [{num_ranks}, {num_features}] (ranks, features), "
            f"got {list(vbe_output_offsets.shape)}"
        )
    starts = vbe_output_offsets.tolist()
    flat = out.reshape(-1)
    pos = 0
    for r in range(num_ranks):
        for f in range(num_features):
            n = batch_per_feature_per_rank[f][r] * dims[f]
            start = int(starts[r][f])
            if start + n > vbe_output.numel():
                raise ValueError(
                    f"vbe_output has {vbe_output.numel()} values; rank {r} feature {f} needs [{start}, {start + n})"
                )
            vbe_output[start : start + n] = flat[pos : pos + n].to(vbe_output.dtype)
            pos += n
    return vbe_output


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BatchedFusedEmbeddingBag(FusedTableBatchMethods, BaseBatchedEmbeddingBag, FusedOptimizerModule):
    """Pooled kernel with the optimizer fused into backward (FBGEMM ``SplitTableBatchedEmbeddingBagsCodegen``).

    ``named_parameters()`` yields one ``TableBatchedEmbeddingSlice`` per table (``"<table>.weight"``) tagged
    ``_in_backward_optimizers``; ``named_buffers()`` yields nothing; the optimizer is ``fused_optimizer``.
    Local dims must be multiples of 4.

    Example::

        kernel = BatchedFusedEmbeddingBag(grouped_config)         # fused_params={"optimizer": ..., ...}
        pooled = kernel(kjt)                                      # [B, dim_sum]
        pooled.sum().backward()                                   # rows already updated here
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
        env: Optional[ShardingEnv] = None,
    ) -> None:
        super().__init__(config, pg, device, sharding_type)
        # The sharding environment (fully sharded 2-D kernels read their replica group from it).
        self._env = env
        self._build_tables(self._pooling_mode)
        self._cpu_fast = cpu_fast_path_for(self._emb_module, self._device, config.is_weighted)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class BatchedDenseEmbeddingBag(DenseTableBatchMethods, BaseBatchedEmbeddingBag):
    """Pooled kernel with a plain autograd weight (FBGEMM ``DenseTableBatchedEmbeddingBagsCodegen``).

    ``named_parameters()`` yields the one flat weight as ``"<t0>/<t1>/....weight"`` (what DDP and dense
    optimizers train); ``named_parameters_by_table()`` gives per-table views whose ``.grad`` is the matching
    part of the flat gradient.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
    ) -> None:
        super().__init__(config, pg, device, sharding_type)
        self._supports_vbe = False
        self._build_tables(self._pooling_mode)
