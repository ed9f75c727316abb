"""``GridPooledEmbeddingDist``: the grid output dist with TorchRec's constructor.

Each column block of a grid-sharded table is a table-row-wise unit, so the dist is table-row-wise's: an intra-host
reduce-scatter of the row partial sums, then a cross-host all-to-all of the column blocks (``[B_me, Σ D]``,
host-major columns). Column blocks are put back in table order by the sharding's output callbacks.
"""

from typing import Callable, Dict, List, Optional

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingShardingContext
from recsys_lib.distributed.sharding.twrw_sharding.pooled import TwRwPooledEmbeddingDist


@public_at("recsys_lib.distributed.sharding.grid_sharding")
class GridPooledEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """``[ΣB_r, D_host]`` partial sums on every rank → ``[B_me, Σ_h D_h]``.

    Args:
        rank: this rank (global).
        cross_pg: ranks with this rank's local rank, one per host.
        intra_pg: the ranks of this host.
        dim_sum_per_node: ``D_h``, pooled width computed by host ``h``.
        emb_dim_per_node_per_feature: ``[h][f]`` width of host ``h``'s feature ``f``.
        device: where outputs live.
        qcomm_codecs_registry: wire codecs keyed by ``CommOp.value``.
        callbacks: applied to the result on wait.
    """

    def __init__(
        self,
        rank: int,
        cross_pg: dist.ProcessGroup,
        intra_pg: dist.ProcessGroup,
        dim_sum_per_node: List[int],
        emb_dim_per_node_per_feature: List[List[int]],
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        callbacks: Optional[List[Callable[[torch.Tensor], torch.Tensor]]] = None,
    ) -> None:
        super().__init__()
        self._rank = rank
        self._device = device
        self._dist = TwRwPooledEmbeddingDist(
            rank, cross_pg, intra_pg, dim_sum_per_node, emb_dim_per_node_per_feature, device, qcomm_codecs_registry
        )
        self._callbacks = list(callbacks or [])

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        """``sharding_ctx.batch_size_per_rank`` gives every rank's batch (required)."""
        out = self._dist(local_embs, sharding_ctx)
        out.callbacks.extend(self._callbacks)
        return out
