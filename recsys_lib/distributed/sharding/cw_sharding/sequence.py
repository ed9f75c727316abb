"""Column-wise sequence sharding (EC): table-wise sequence sharding on the column shards, then each id's
row put back together from its shards.

Rank → columns as in ``pooled.py``. The inner ``TwSequenceEmbeddingSharding`` returns, in the order of this
rank's sharding-ordered KJT, one ``[L_f, D_shard]`` block per (feature, shard); :func:`combine_rows` (on
wait) concatenates each feature's blocks along columns in column order → ``[L_f, D]``, features in
first-appearance order. All shards need one width (the sequence all-to-all moves ``[ids, D_shard]``).
"""

from typing import Any, Dict, List, Optional, Tuple

import torch

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed.sharding._delegate import DelegatedSharding
from recsys_lib.distributed.sharding._placement import output_segments
from recsys_lib.distributed.sharding.cw_sharding.pooled import check_column_shards
from recsys_lib.distributed.sharding.tw_sharding.sequence import TwSequenceEmbeddingSharding
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def combine_rows(rows: torch.Tensor, segment_lengths: List[int], segments: List[Tuple[str, int, int]]) -> torch.Tensor:
    """Rows of (feature, shard) blocks → rows of features (see the module docstring)."""
    blocks = rows.split(segment_lengths, dim=0)
    order: List[str] = []
    by_name: Dict[str, List[int]] = {}
    for i, (name, _, _) in enumerate(segments):
        if name not in by_name:
            order.append(name)
            by_name[name] = []
        by_name[name].append(i)
    out = []
    for name in order:
        idx = sorted(by_name[name], key=lambda i: segments[i][1])
        out.append(blocks[idx[0]] if len(idx) == 1 else torch.cat([blocks[i] for i in idx], dim=1))
    return out[0] if len(out) == 1 else torch.cat(out, dim=0)


class _CombineAwaitable(Awaitable[torch.Tensor]):
    def __init__(self, inner: Awaitable[torch.Tensor], segment_lengths: List[int], segments: List[Any]) -> None:
        super().__init__()
        self._inner = inner
        self._segment_lengths = segment_lengths
        self._segments = segments

    def _wait_impl(self) -> torch.Tensor:
        return combine_rows(self._inner.wait(), self._segment_lengths, self._segments)


class CwSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """The table-wise sequence dist, then :func:`combine_rows`."""

    def __init__(self, inner: BaseEmbeddingDist, segments: List[Tuple[str, int, int]]) -> None:
        super().__init__()
        self._inner = inner
        self._segments = segments

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is None:
            raise ValueError("column-wise sequence output dist needs the sharding context")
        return _CombineAwaitable(
            self._inner(local_embs, sharding_ctx), sharding_ctx.length_per_key_before_input_dist, self._segments
        )


class CwSequenceEmbeddingSharding(
    DelegatedSharding,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Column-wise sequence sharding (see the module docstring). Args as ``CwPooledEmbeddingSharding``;
    ``permute_embeddings`` is kept for TorchRec's signature: sequence rows always come back whole (each id's
    shards side by side, :func:`combine_rows`), which is what the sharded EC expects either way."""

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._permute_embeddings = permute_embeddings
        check_column_shards(sharding_infos, "column-wise")
        self._inner = TwSequenceEmbeddingSharding(sharding_infos, env, device, qcomm_codecs_registry)
        self._segments = output_segments(self._inner._placement)
        names: List[str] = []
        dims: Dict[str, int] = {}
        for name, _, width in self._segments:
            if name not in dims:
                names.append(name)
                dims[name] = 0
            dims[name] += width
        self._names = names
        self._dims = [dims[n] for n in names]

    def embedding_names(self) -> List[str]:
        return list(self._names)

    def embedding_dims(self) -> List[int]:
        return list(self._dims)

    def create_output_dist(self, device: Optional[torch.device] = None) -> CwSequenceEmbeddingDist:
        return CwSequenceEmbeddingDist(self._inner.create_output_dist(device), self._segments)
