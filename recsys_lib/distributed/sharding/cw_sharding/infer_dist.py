"""Column-wise inference dists on one host (TorchRec's ``InferCw*`` names): every "rank" is a device of this process.

Each device pools its column blocks ``(B, D_r)``; the outputs are put side by side on one device, optionally with
the blocks reordered so each table's blocks come in column order::

    t (D=8) blocks c0 = [0, 4) on rank 1, c1 = [4, 8) on rank 0:   concat [c1 | c0],  permute [1, 0] -> [c0 | c1]
"""

from typing import List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import NullShardingContext
from recsys_lib.distributed._dist.all_to_one import EmbeddingsAllToOne, SeqEmbeddingsAllToOne
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist
from recsys_lib.distributed.sharding.sequence_sharding import InferSequenceShardingContext


def permute_column_blocks(pooled: torch.Tensor, offsets: List[int], permute: List[int]) -> torch.Tensor:
    """``(B, ΣD)`` with its column blocks (block ``i`` = columns ``[offsets[i], offsets[i+1])``) reordered so
    that output block ``j`` is input block ``permute[j]``."""
    return torch.cat([pooled[:, offsets[p]: offsets[p + 1]] for p in permute], dim=1)


@public_at("recsys_lib.distributed.sharding.cw_sharding")
class InferCwPooledEmbeddingDist(BaseEmbeddingDist[NullShardingContext, List[torch.Tensor], torch.Tensor]):
    """Concatenates every device's pooled column blocks ``(B, D_r)`` along columns on ``device``.

    Args:
        device: where the result is returned.
        world_size: devices (one tensor each).
    """

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._dist = EmbeddingsAllToOne(device=device, world_size=world_size, cat_dim=1)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[NullShardingContext] = None
    ) -> torch.Tensor:
        return self._dist(local_embs)


@public_at("recsys_lib.distributed.sharding.cw_sharding")
class InferCwPooledEmbeddingDistWithPermute(
    BaseEmbeddingDist[NullShardingContext, List[torch.Tensor], torch.Tensor]
):
    """As :class:`InferCwPooledEmbeddingDist`, then the column blocks reordered.

    Args:
        device: where the result is returned.
        world_size: devices (one tensor each).
        embedding_dims: width of every column block in the concatenated output.
        permute: output block ``j`` is input block ``permute[j]``.
    """

    def __init__(self, device: torch.device, world_size: int, embedding_dims: List[int], permute: List[int]) -> None:
        super().__init__()
        if sorted(permute) != list(range(len(embedding_dims))):
            raise ValueError(f"InferCwPooledEmbeddingDistWithPermute: permute {permute} is not a permutation of the "
                             f"{len(embedding_dims)} blocks")
        self._dist = EmbeddingsAllToOne(device=device, world_size=world_size, cat_dim=1)
        offsets = [0]
        for d in embedding_dims:
            offsets.append(offsets[-1] + d)
        self._offsets: List[int] = offsets
        self._permute: List[int] = list(permute)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[NullShardingContext] = None
    ) -> torch.Tensor:
        return permute_column_blocks(self._dist(local_embs), self._offsets, self._permute)


@public_at("recsys_lib.distributed.sharding.cw_sequence_sharding")
class InferCwSequenceEmbeddingDist(
    BaseEmbeddingDist[InferSequenceShardingContext, List[torch.Tensor], List[torch.Tensor]]
):
    """Moves every device's sequence rows (its column blocks, ``(N, D_r)``) to ``device``.

    Args:
        device: where the rows go.
        world_size: devices (one tensor each).
    """

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._dist = SeqEmbeddingsAllToOne(device=device, world_size=world_size)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[InferSequenceShardingContext] = None
    ) -> List[torch.Tensor]:
        return self._dist(local_embs)
