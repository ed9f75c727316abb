"""Output distribution of pooled embeddings (EBC): all-to-all, reduce-scatter, all-gather modules.

Each module wraps one ``comm_ops`` collective and returns a ``PooledEmbeddingsAwaitable``; its
callbacks (e.g. the column-wise permutation) run on ``wait()``.

Layouts (``B_r`` rows of the batch owned by rank r, ``D_k`` pooled width computed on rank k)::

    all-to-all (TW/CW):   rank k: [ΣB_r, D_k]       → rank r: [B_r, D_0 | D_1 | ... ]
    reduce-scatter (RW):  rank k: [ΣB_r, D] partial → rank r: [B_r, D] = Σ_k partial_k rows of r
    all-gather:           rank k: [B, D]            → every rank: [W·B, D]
"""

from typing import Callable, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._collectives.primitives import CollectivePolicy
from recsys_lib.distributed import comm_ops


@public_at("recsys_lib.distributed.dist_data")
class PooledEmbeddingsAwaitable(Awaitable[torch.Tensor]):
    """Awaits a pooled-embedding collective; ``callbacks`` post-process the tensor on ``wait()``."""

    def __init__(self, tensor_awaitable: Awaitable[torch.Tensor]) -> None:
        super().__init__()
        self._tensor_awaitable = tensor_awaitable

    def _wait_impl(self) -> torch.Tensor:
        return self._tensor_awaitable.wait()

    @property
    def callbacks(self) -> List[Callable[[torch.Tensor], torch.Tensor]]:
        return self._callbacks


def _equal_batch(local_embs: torch.Tensor, world: int) -> List[int]:
    if local_embs.size(0) % world != 0:
        raise ValueError(
            f"pooled embeddings: {local_embs.size(0)} rows do not split evenly over {world} ranks; "
            f"pass batch_size_per_rank"
        )
    return [local_embs.size(0) // world] * world


@public_at("recsys_lib.distributed.dist_data")
class PooledEmbeddingsAllToAll(nn.Module):
    """Model-parallel → data-parallel pooled embeddings (TW/CW output dist).

    Args:
        pg: process group.
        dim_sum_per_rank: ``D_k``, pooled width computed on each rank.
        device: device of the outputs.
        callbacks: applied to the result on ``wait()`` (in order).
        codecs: wire codecs (forward payload / backward gradient).

    Example::

        a2a = PooledEmbeddingsAllToAll(pg, dim_sum_per_rank=[8, 4])
        out = a2a(local_embs).wait()      # [B_local, 12]
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        dim_sum_per_rank: List[int],
        device: Optional[torch.device] = None,
        callbacks: Optional[List[Callable[[torch.Tensor], torch.Tensor]]] = None,
        codecs: Optional[QuantizedCommCodecs] = None,
    ) -> None:
        super().__init__()
        world = dist.get_world_size(pg)
        if len(dim_sum_per_rank) != world:
            raise ValueError(f"dim_sum_per_rank {dim_sum_per_rank} needs one entry per rank ({world})")
        self._pg = pg
        self._dim_sum_per_rank = list(dim_sum_per_rank)
        self._device = device
        self._callbacks: List[Callable[[torch.Tensor], torch.Tensor]] = list(callbacks or [])
        self._codecs = codecs

    def forward(self, local_embs: torch.Tensor, batch_size_per_rank: Optional[List[int]] = None) -> PooledEmbeddingsAwaitable:
        """``local_embs``: ``[ΣB_r, D_me]``; ``batch_size_per_rank`` default: equal split of the rows."""
        world = dist.get_world_size(self._pg)
        if batch_size_per_rank is None:
            batch_size_per_rank = _equal_batch(local_embs, world)
        req = comm_ops.alltoall_pooled(local_embs, batch_size_per_rank, self._dim_sum_per_rank,
                                       group=self._pg, codecs=self._codecs)
        out = PooledEmbeddingsAwaitable(req)
        out.callbacks.extend(self._callbacks)
        return out

    @property
    def callbacks(self) -> List[Callable[[torch.Tensor], torch.Tensor]]:
        return self._callbacks


@public_at("recsys_lib.distributed.dist_data")
class VariableBatchPooledEmbeddingsAllToAll(nn.Module):
    """Pooled all-to-all with a batch size per (rank, feature) (VBE); flat 1-D payloads.

    Args:
        pg: process group.
        emb_dim_per_rank_per_feature: ``[k][f]`` pooled dim of rank k's feature f.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        emb_dim_per_rank_per_feature: List[List[int]],
        device: Optional[torch.device] = None,
        callbacks: Optional[List[Callable[[torch.Tensor], torch.Tensor]]] = None,
        codecs: Optional[QuantizedCommCodecs] = None,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._emb_dim_per_rank_per_feature = [list(d) for d in emb_dim_per_rank_per_feature]
        self._device = device
        self._callbacks: List[Callable[[torch.Tensor], torch.Tensor]] = list(callbacks or [])
        self._codecs = codecs

    def forward(
        self,
        local_embs: torch.Tensor,
        batch_size_per_rank_per_feature: List[List[int]],
        batch_size_per_feature_pre_a2a: List[int],
    ) -> PooledEmbeddingsAwaitable:
        req = comm_ops.variable_batch_alltoall_pooled(
            local_embs.reshape(-1), batch_size_per_rank_per_feature, batch_size_per_feature_pre_a2a,
            self._emb_dim_per_rank_per_feature, group=self._pg, codecs=self._codecs,
        )
        out = PooledEmbeddingsAwaitable(req)
        out.callbacks.extend(self._callbacks)
        return out

    @property
    def callbacks(self) -> List[Callable[[torch.Tensor], torch.Tensor]]:
        return self._callbacks


@public_at("recsys_lib.distributed.dist_data")
class PooledEmbeddingsReduceScatter(nn.Module):
    """Row-wise output dist: partial pooled sums from every rank, summed and scattered by batch rows.

    Args:
        pg: process group.
        codecs: wire codecs.

    The collective's implementation (``CollectivePolicy``; default per backend, gloo: all-to-all + sum) is the
    attribute ``_policy``.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        codecs: Optional[QuantizedCommCodecs] = None,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._codecs = codecs
        self._policy: Optional[CollectivePolicy] = None

    def forward(self, local_embs: torch.Tensor, input_splits: Optional[List[int]] = None) -> PooledEmbeddingsAwaitable:
        """``local_embs``: ``[ΣB_r, D]``; ``input_splits`` = ``B_r`` per rank (default equal)."""
        if input_splits is not None and len(set(input_splits)) > 1:
            req = comm_ops.issue_reduce_scatter_v_pooled(local_embs, input_splits, self._pg, self._codecs,
                                                         self._policy)
        else:
            req = comm_ops.issue_reduce_scatter_base_pooled(local_embs, self._pg, self._codecs, self._policy)
        return PooledEmbeddingsAwaitable(req)


@public_at("recsys_lib.distributed.dist_data")
class VariableBatchPooledEmbeddingsReduceScatter(nn.Module):
    """Row-wise output dist with a batch size per (rank, feature): flat ``[rank][feature][row][dim]`` payload."""

    def __init__(
        self,
        pg: dist.ProcessGroup,
        codecs: Optional[QuantizedCommCodecs] = None,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._codecs = codecs
        self._policy: Optional[CollectivePolicy] = None  # see PooledEmbeddingsReduceScatter

    def forward(
        self,
        local_embs: torch.Tensor,
        batch_size_per_rank_per_feature: List[List[int]],
        embedding_dims: List[int],
    ) -> PooledEmbeddingsAwaitable:
        req = comm_ops.issue_reduce_scatter_v_per_feature_pooled(
            local_embs.reshape(-1), batch_size_per_rank_per_feature, embedding_dims, self._pg, self._codecs,
            self._policy,
        )
        return PooledEmbeddingsAwaitable(req)


@public_at("recsys_lib.distributed.dist_data")
class PooledEmbeddingsAllGather(nn.Module):
    """Every rank receives the concatenation (dim 0, rank order) of all ranks' ``[B, D]`` tensors."""

    def __init__(self, pg: dist.ProcessGroup, codecs: Optional[QuantizedCommCodecs] = None) -> None:
        super().__init__()
        self._pg = pg
        self._codecs = codecs

    def forward(self, local_emb: torch.Tensor) -> PooledEmbeddingsAwaitable:
        return PooledEmbeddingsAwaitable(comm_ops.all_gather_base_pooled(local_emb, group=self._pg, codecs=self._codecs))
