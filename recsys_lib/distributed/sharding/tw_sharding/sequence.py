"""Table-wise sequence sharding (EC): whole tables on single ranks, one embedding row per id.

Rank → rows as in ``pooled.py``. Per batch: the same ``KJTAllToAll`` as the pooled sharding; the lookup
returns ``[ids, D]`` in the distributed KJT's order (feature-major, then source rank); one
``SequenceEmbeddingsAllToAll`` sends every rank the rows of its own ids. Rank r receives, for source
ranks k = 0..W-1, k's features of r's samples — i.e. the values order of r's own (sharding-ordered) KJT.

Split sizes of that all-to-all (:func:`sequence_splits`, pure)::

    input_splits[r]  = ids of rank r's samples in my distributed KJT   (I send them back to r)
    output_splits[k] = ids of my samples for the features rank k owns   (what I sent k on the way in)

Variable batch per feature (VBE input): the distributed KJT holds, per local feature f and source rank s,
``b[s][f]`` samples (each rank's own batch of that feature); the segments above are cut by those counts
(:func:`segment_batches`) instead of one batch size per rank. Everything else is unchanged: rows are per id.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed import comm_ops
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.enums import CommOp
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.sequence import sequence_recat
from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import (
    BaseEmbeddingDist,
    EmbeddingSharding,
    EmbeddingShardingContext,
)
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding._placement import PlacementQueries, RankPlacement
from recsys_lib.distributed.sharding.tw_sharding.pooled import TwSparseFeaturesDist, _codecs, _pg
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def segment_batches(
    sharding_ctx: EmbeddingShardingContext, num_local_features: int, world_size: int
) -> List[int]:
    """Samples in each (local feature, source rank) segment of the received KJT, feature-major (pure).

    Fixed batch: ``batch_size_per_rank[s]`` for every feature. Variable batch per feature (VBE): rank ``s``'s
    batch of local feature ``f``, ``batch_size_per_rank_per_feature[s][f]`` (recorded from the received KJT)::

        2 local features, W=2, VBE [[3, 1], [2, 4]]  ->  [3, 2, 1, 4]   (f0 r0, f0 r1, f1 r0, f1 r1)
    """
    if sharding_ctx.variable_batch_per_feature:
        per = sharding_ctx.batch_size_per_rank_per_feature
        if num_local_features and (len(per) != world_size or any(len(p) != num_local_features for p in per)):
            raise RuntimeError(
                f"sequence output dist: variable batch sizes {per} do not cover {world_size} ranks x "
                f"{num_local_features} local features"
            )
        return [int(per[s][f]) for f in range(num_local_features) for s in range(world_size)]
    if len(sharding_ctx.batch_size_per_rank) != world_size:
        raise RuntimeError(
            f"sequence output dist: batch_size_per_rank {sharding_ctx.batch_size_per_rank} needs {world_size} entries"
        )
    return [int(b) for _ in range(num_local_features) for b in sharding_ctx.batch_size_per_rank]


def segment_ids(lengths: torch.Tensor, batches: List[int]) -> torch.Tensor:
    """Ids in each segment of ``lengths`` (consecutive segments of ``batches[i]`` samples each; pure)."""
    lengths = lengths.reshape(-1).to(torch.long)
    if sum(batches) != lengths.numel():
        raise RuntimeError(f"sequence output dist: {lengths.numel()} lengths for segments of {batches} samples")
    ends = torch.cumsum(torch.tensor([0] + batches, dtype=torch.long, device=lengths.device), 0)
    cum = torch.cat([lengths.new_zeros(1), torch.cumsum(lengths, 0)])
    return cum[ends[1:]] - cum[ends[:-1]]


def return_splits(length_per_key_before_input_dist: List[int], features_per_rank: List[int]) -> List[int]:
    """``output_splits[k]``: ids of this rank's samples for the features rank k looks up (what it sent k)."""
    output_splits, start = [], 0
    for n in features_per_rank:
        output_splits.append(sum(length_per_key_before_input_dist[start:start + n]))
        start += n
    return output_splits


def sequence_splits(
    lengths_after_input_dist: torch.Tensor,
    num_local_features: int,
    batch_size_per_rank: List[int],
    length_per_key_before_input_dist: List[int],
    features_per_rank: List[int],
) -> Tuple[List[int], List[int]]:
    """``(input_splits, output_splits)`` of the sequence all-to-all (see the module docstring), fixed batch."""
    world = len(features_per_rank)
    batches = [int(b) for _ in range(num_local_features) for b in batch_size_per_rank]
    ids = segment_ids(lengths_after_input_dist, batches).view(num_local_features, world)
    input_splits = [int(n) for n in ids.sum(0).tolist()] if num_local_features else [0] * world
    return input_splits, return_splits(length_per_key_before_input_dist, features_per_rank)


class _RowsAwaitable(Awaitable[torch.Tensor]):
    """Waits the sequence all-to-all request (holding the re-ordered rows it sends); then, for row-wise
    sharding, puts the rows back in the original id order (``unbucketize_permute``)."""

    def __init__(
        self, request: Awaitable[torch.Tensor], send: torch.Tensor, unbucketize_permute: Optional[torch.Tensor] = None
    ) -> None:
        super().__init__()
        self._request = request
        self._send = send
        self._unbucketize_permute = unbucketize_permute

    def _wait_impl(self) -> torch.Tensor:
        out = self._request.wait()
        self._send = torch.empty(0)
        if self._unbucketize_permute is not None:
            out = out.index_select(0, self._unbucketize_permute.to(device=out.device, dtype=torch.long))
        return out


def send_rows_back(
    local_embs: torch.Tensor,
    sharding_ctx: EmbeddingShardingContext,
    num_local_features: int,
    output_splits: List[int],
    recat: Optional[torch.Tensor],
    pg: dist.ProcessGroup,
    codecs: Optional[QuantizedCommCodecs],
    unbucketize_permute: Optional[torch.Tensor] = None,
) -> Awaitable[torch.Tensor]:
    """Rows ``[ids, D]`` of the received KJT (feature-major, then source rank) to the ranks owning the samples.

    Segment (f, s) holds the ids of source s's samples of local feature f (:func:`segment_batches` gives its
    sample count, fixed or per feature); the rows are re-ordered rank-major (``recat``, an autograd
    ``index_select``) and ``comm_ops.alltoall_sequence`` sends rank s its segments.
    """
    lengths = sharding_ctx.lengths_after_input_dist
    if lengths is None:
        raise ValueError("sequence output dist needs the sharding context filled by the sharded module")
    world = dist.get_world_size(pg)
    batches = segment_batches(sharding_ctx, num_local_features, world)
    ids = segment_ids(lengths, batches)
    input_splits = [int(n) for n in ids.view(num_local_features, world).sum(0).tolist()] if num_local_features \
        else [0] * world
    send = local_embs
    if recat is not None and send.size(0) > 0:
        send = comm_ops.permute_segments(send, recat, ids)
    send = send.contiguous()
    # comm_ops takes the sparse all-to-all's splits (the reverse of the rows' way): rows sent = its output splits
    request = comm_ops.alltoall_sequence(
        send, None, None, lengths, output_splits, input_splits, group=pg, codecs=codecs,  # type: ignore[arg-type]
    )
    return _RowsAwaitable(request, send, unbucketize_permute)


class TwSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """``[ids, D]`` rows back to the ranks owning the samples (sequence all-to-all).

    Needs the sharding context filled by the sharded module: ``batch_size_per_rank`` (or, for a variable
    batch per feature, ``batch_size_per_rank_per_feature``), ``lengths_after_input_dist`` and
    ``length_per_key_before_input_dist``. See :func:`send_rows_back`.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        features_per_rank: List[int],
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._world = dist.get_world_size(pg)
        self._features_per_rank = list(features_per_rank)
        self._local_features = features_per_rank[dist.get_rank(pg)]
        # Row width for ranks whose lookup returns a flat (empty) tensor; the sharding sets it from its tables.
        self._embedding_dim: Optional[int] = None
        self._codecs = _codecs(qcomm_codecs_registry, CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL)
        recat = sequence_recat(self._local_features, self._world)
        self._recat: Optional[torch.Tensor] = torch.tensor(recat, dtype=torch.int64) if recat else None

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is None or sharding_ctx.lengths_after_input_dist is None:
            raise ValueError("sequence output dist needs the sharding context filled by the sharded module")
        local_embs = as_rows(local_embs, self._embedding_dim, "table-wise sequence output dist")
        output_splits = return_splits(sharding_ctx.length_per_key_before_input_dist, self._features_per_rank)
        return send_rows_back(
            local_embs, sharding_ctx, self._local_features, output_splits, self._recat, self._pg, self._codecs
        )


def as_rows(local_embs: torch.Tensor, embedding_dim: Optional[int], what: str) -> torch.Tensor:
    """``[ids, D]`` rows of a lookup's output: as is when 2-D and ``D`` is unknown or equal, else reshaped to
    ``embedding_dim`` columns (a flat or empty output)."""
    if local_embs.dim() == 2 and (embedding_dim is None or local_embs.size(1) == embedding_dim):
        return local_embs
    if embedding_dim is None:
        raise ValueError(f"{what}: got a {local_embs.dim()}-D lookup output {tuple(local_embs.shape)} and no "
                         "embedding dim to read it as rows")
    return local_embs.reshape(-1, embedding_dim)


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
        storage_device_type_from_sharding_infos: Optional[str] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._storage_device_type_from_sharding_infos = storage_device_type_from_sharding_infos
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
        out = TwSequenceEmbeddingDist(
            self._pg, self.features_per_rank(), device if device is not None else self._device,
            self.qcomm_codecs_registry,
        )
        out._embedding_dim = self._dim
        return out
