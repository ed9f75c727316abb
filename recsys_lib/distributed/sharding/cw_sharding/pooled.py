"""Column-wise pooled sharding (EBC): a table split into column blocks, each block placed like a table.

Rank → columns (table R x 12 planned ``column_wise`` on ranks [0, 1, 0], blocks of 4)::

    rank 0: rows [0, R), cols [0, 4) and [8, 12)       rank 1: rows [0, R), cols [4, 8)

It *calls* table-wise on the column shards: the inner ``TwPooledEmbeddingSharding`` sees each shard as a
table (the feature is sent once per shard), and one column permutation — a callback on the pooled
all-to-all — puts the shard columns of every feature back side by side in column order
(:func:`combine_permute`, pure). Per batch: one KJT all-to-all, one pooled all-to-all.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.vbe_layout import blocks_per_name, combine_column_blocks
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed.sharding._delegate import DelegatedSharding
from recsys_lib.distributed.sharding._placement import output_segments
from recsys_lib.distributed.sharding.tw_sharding.pooled import TwPooledEmbeddingSharding
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def check_column_shards(sharding_infos: List[Any], what: str) -> None:
    """Column shards span every row of their table (row offset 0, all rows)."""
    for info in sharding_infos:
        config, spec = info.embedding_config, info.param_sharding.sharding_spec
        for md in getattr(spec, "shards", []) or []:
            if md.shard_offsets[0] != 0 or md.shard_sizes[0] != config.num_embeddings:
                raise ValueError(
                    f"table {config.name!r}: {what} shards must hold all {config.num_embeddings} rows; got a shard at "
                    f"offsets {list(md.shard_offsets)} with sizes {list(md.shard_sizes)}"
                )


def combine_permute(segments: List[Tuple[str, int, int]]) -> Tuple[List[str], List[int], List[int]]:
    """``(names, dims, column_index)``: each name once (first-appearance order), its shards' columns in
    column-offset order; ``column_index`` selects them from the table-wise output (segments in a2a order).

    Example: segments ``[("f", 4, 4), ("g", 0, 8), ("f", 0, 4)]`` → names ``[f, g]``, dims ``[8, 8]``,
    index ``[12..15, 0..3, 4..11]``.
    """
    starts, col = [], 0
    for _, _, width in segments:
        starts.append(col)
        col += width
    blocks = blocks_per_name([n for n, _, _ in segments], [c for _, c, _ in segments])
    names = [segments[ordered[0]][0] for ordered in blocks]
    dims = [sum(segments[i][2] for i in ordered) for ordered in blocks]
    index = [c for ordered in blocks for i in ordered for c in range(starts[i], starts[i] + segments[i][2])]
    return names, dims, index


class ColumnCombiningDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """Wraps an output dist whose result holds column blocks (segments) and puts each feature's blocks side by
    side on wait: a column ``index_select`` for uniform batches; for variable batches (flat, one ``[b, width]``
    block per segment) the blocks of a feature are concatenated along columns (:func:`combine_column_blocks`).

    Args:
        inner: the output dist delivering the segments (table-wise or table-row-wise).
        segments: ``(name, column_offset, width)`` of every segment, in the order ``inner`` delivers them.
    """

    def __init__(self, inner: nn.Module, segments: List[Tuple[str, int, int]]) -> None:
        super().__init__()
        self._inner = inner
        _, _, index = combine_permute(segments)
        self._index = torch.tensor(index, dtype=torch.int64)
        self._widths = [w for _, _, w in segments]
        self._blocks = blocks_per_name([n for n, _, _ in segments], [c for _, c, _ in segments])

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        out = self._inner(local_embs, sharding_ctx)
        if sharding_ctx is not None and sharding_ctx.variable_batch_per_feature:
            batch, widths, blocks = sharding_ctx.batch_size_per_feature_pre_a2a, self._widths, self._blocks
            out.callbacks.append(lambda t: combine_column_blocks(t, batch, widths, blocks))
        else:
            index = self._index
            out.callbacks.append(lambda t: t.index_select(1, index.to(t.device)))
        return out


class CwPooledEmbeddingSharding(
    DelegatedSharding,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Column-wise pooled sharding (see the module docstring).

    Args:
        sharding_infos: tables planned ``column_wise`` (or ``table_column_wise``).
        env / device / qcomm_codecs_registry: as ``TwPooledEmbeddingSharding``.
        permute_embeddings: put shard columns back in column order (sharded modules pass ``True``; ``False``
            leaves the table-wise order and one output name per shard, as TorchRec's flag).
    """

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        check_column_shards(sharding_infos, "column-wise")
        self._inner = TwPooledEmbeddingSharding(sharding_infos, env, device, qcomm_codecs_registry)
        self._permute_embeddings = permute_embeddings
        self._names, self._dims, _ = combine_permute(output_segments(self._inner._placement))

    def embedding_names(self) -> List[str]:
        return list(self._names) if self._permute_embeddings else self._inner.embedding_names()

    def embedding_dims(self) -> List[int]:
        return list(self._dims) if self._permute_embeddings else self._inner.embedding_dims()

    def create_output_dist(self, device: Optional[torch.device] = None) -> nn.Module:
        dist = self._inner.create_output_dist(device)
        if not self._permute_embeddings:
            return dist
        return ColumnCombiningDist(dist, output_segments(self._inner._placement))
