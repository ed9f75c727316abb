"""Table-wise sequence sharding (EC): whole tables on single ranks, one embedding row per id.

Rank → rows as in ``pooled.py``. Per batch: the same ``KJTAllToAll`` as the pooled sharding; the lookup
returns ``[ids, D]`` in the distributed KJT's order (feature-major, then source rank); one
``SequenceEmbeddingsAllToAll`` sends every rank the rows of its own ids. Rank r receives, for source
ranks k = 0..W-1, k's features of r's samples — i.e. the values order of r's own (sharding-ordered) KJT.

Split sizes of that all-to-all (:func:`sequence_splits`, pure)::

    input_splits[r]  = ids of rank r's samples in my distributed KJT   (I send them back to r)
    output_splits[k] = ids of my samples for the features rank k owns   (what I sent k on the way in)
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed import comm_ops
from recsys_lib.distributed.dist_data import sequence_recat
from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import (
    BaseEmbeddingDist,
    EmbeddingSharding,
    EmbeddingShardingContext,
)
from recsys_lib.distributed.embedding_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding._placement import PlacementQueries, RankPlacement
from recsys_lib.distributed.sharding.tw_sharding.pooled import TwSparseFeaturesDist, _codecs, _pg
from recsys_lib.distributed.types import Awaitable, CommOp, QuantizedCommCodecs, ShardingEnv
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def sequence_splits(
    lengths_after_input_dist: torch.Tensor,
    num_local_features: int,
    batch_size_per_rank: List[int],
    length_per_key_before_input_dist: List[int],
    features_per_rank: List[int],
) -> Tuple[List[int], List[int]]:
    """``(input_splits, output_splits)`` of the sequence all-to-all (see the module docstring)."""
    world = len(features_per_rank)
    if num_local_features == 0:
        input_splits = [0] * world
    else:
        per_rank = lengths_after_input_dist.view(num_local_features, -1).split(batch_size_per_rank, dim=1)
        input_splits = [int(p.sum()) for p in per_rank]
    output_splits, start = [], 0
    for n in features_per_rank:
        output_splits.append(sum(length_per_key_before_input_dist[start:start + n]))
        start += n
    return input_splits, output_splits


class _RowsAwaitable(Awaitable[torch.Tensor]):
    """Waits the sequence all-to-all request (holding the re-ordered rows it sends)."""

    def __init__(self, request: Awaitable[torch.Tensor], send: torch.Tensor) -> None:
        super().__init__()
        self._request = request
        self._send = send

    def _wait_impl(self) -> torch.Tensor:
        out = self._request.wait()
        self._send = torch.empty(0)
        return out


class TwSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """``[ids, D]`` rows back to the ranks owning the samples (sequence all-to-all).

    Needs the sharding context filled by the sharded module: ``batch_size_per_rank``,
    ``lengths_after_input_dist`` and ``length_per_key_before_input_dist``. The feature-major → rank-major
    re-order is done here, as an autograd ``index_select`` (its backward is autograd's), then
    ``comm_ops.alltoall_sequence`` moves the rows.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        features_per_rank: List[int],
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        embedding_dim: int = 0,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._world = dist.get_world_size(pg)
        self._features_per_rank = list(features_per_rank)
        self._local_features = features_per_rank[dist.get_rank(pg)]
        self._embedding_dim = embedding_dim
        self._codecs = _codecs(qcomm_codecs_registry, CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL)
        recat = sequence_recat(self._local_features, self._world)
        self._recat: Optional[torch.Tensor] = torch.tensor(recat, dtype=torch.int64) if recat else None

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is None or sharding_ctx.lengths_after_input_dist is None:
            raise ValueError("sequence output dist needs the sharding context filled by the sharded module")
        ctx = sharding_ctx
        lengths = ctx.lengths_after_input_dist
        input_splits, output_splits = sequence_splits(
            lengths, self._local_features, ctx.batch_size_per_rank,
            ctx.length_per_key_before_input_dist, self._features_per_rank,
        )
        if local_embs.dim() != 2 or local_embs.size(1) != self._embedding_dim:
            local_embs = local_embs.reshape(-1, self._embedding_dim)
        send = local_embs
        if self._recat is not None and send.size(0) > 0:
            segment_lengths = lengths.to(torch.long).view(self._recat.numel(), -1).sum(1)
            send = comm_ops.permute_segments(send, self._recat, segment_lengths)
        send = send.contiguous()
        request = comm_ops.alltoall_sequence(
            send, None, None, lengths, input_splits, output_splits, group=self._pg, codecs=self._codecs,
        )
        return _RowsAwaitable(request, send)


def uniform_dim(dims: List[int], what: str) -> int:
    """The one row width of a sequence sharding; ``ValueError`` when its shards differ."""
    if len(set(dims)) > 1:
        raise ValueError(
            f"{what}: sequence (EmbeddingCollection) sharding needs one embedding width across its shards, got {sorted(set(dims))}"
        )
    return dims[0] if dims else 0


class TwSequenceEmbeddingSharding(
    PlacementQueries,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Table-wise sequence sharding (see the module docstring). Args as ``TwPooledEmbeddingSharding``."""

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._env = env
        self._pg = _pg(env)
        self._device = device
        self._placement = RankPlacement(sharding_infos, env.world_size, env.rank)
        self._dim = uniform_dim(self.embedding_dims(), "table-wise")

    def create_input_dist(self, device: Optional[torch.device] = None) -> TwSparseFeaturesDist:
        return TwSparseFeaturesDist(self._pg, self.features_per_rank())

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> GroupedEmbeddingsLookup:
        return GroupedEmbeddingsLookup(
            grouped_configs=self._placement.local_grouped_configs, pg=self._pg,
            device=device if device is not None else self._device,
        )

    def create_output_dist(self, device: Optional[torch.device] = None) -> TwSequenceEmbeddingDist:
        return TwSequenceEmbeddingDist(
            self._pg, self.features_per_rank(), device if device is not None else self._device,
            self.qcomm_codecs_registry, embedding_dim=self._dim,
        )
