"""Row-wise inference dists on one host (TorchRec's ``InferRw*`` names): every "rank" is a device of this process.

Input: ids bucketized by row block into one KJT per rank (local row ids), no process group::

    feature f (R=10, W=2: blocks [0, 5) | [5, 10)),  bags | 7 1 | 9 |
      rank 0: f | 1 |  |     |          rank 1: f | 2 |  | 4 |      (7 -> 2, 9 -> 4 as local rows)

Output: pooled partial sums of every rank added on one device; sequence rows moved to one device (the caller
puts them back in input order with the unbucketize permutation).
"""

from typing import List, Optional, Tuple, Union

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import NullShardingContext
from recsys_lib.distributed._dist.all_to_one import EmbeddingsAllToOneReduce, SeqEmbeddingsAllToOne
from recsys_lib.distributed._dist.kjt import KJTOneToAll
from recsys_lib.distributed._sharded.body import check_ids
from recsys_lib.distributed.embedding_sharding import InputDistOutputs
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, BaseSparseFeaturesDist
from recsys_lib.distributed.sharding.rw_sharding.shard_offsets import convert_tensor
from recsys_lib.distributed.sharding.sequence_sharding import InferSequenceShardingContext
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def bucketize_for_inference(
    kjt: KeyedJaggedTensor,
    num_buckets: int,
    block_sizes: torch.Tensor,
    total_num_buckets: Optional[torch.Tensor],
    bucketize_pos: bool,
    row_pos: Optional[List[torch.Tensor]],
    is_sequence: bool,
    keep_original_indices: bool,
) -> Tuple[KeyedJaggedTensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(bucketized KJT (keys repeated per bucket, bucket-major), unbucketize permute, bucket of every id)``.

    Id ``i`` of feature ``f`` goes to bucket ``i // block_sizes[f]`` as row ``i % block_sizes[f]`` (or by the row
    boundaries ``row_pos[f]``); the permute and bucket mapping are computed for sequences only. With
    ``total_num_buckets`` (sequences) a feature's ``total`` hash buckets are dealt round-robin over the ranks
    (FBGEMM's inference bucketization, as TorchRec calls it).
    """
    values = kjt.values()
    blocks = block_sizes.to(device=values.device, dtype=values.dtype)
    totals = None
    if is_sequence and total_num_buckets is not None:
        totals = total_num_buckets.to(device=values.device, dtype=values.dtype)
    out = torch.ops.fbgemm.block_bucketize_sparse_features_inference(
        kjt.lengths().view(-1).to(values.dtype),
        values,
        bucketize_pos=bucketize_pos,
        sequence=is_sequence,
        block_sizes=blocks,
        my_size=num_buckets,
        weights=kjt.weights_or_none(),
        block_bucketize_pos=row_pos,
        return_bucket_mapping=is_sequence,
        keep_orig_idx=keep_original_indices and is_sequence,
        total_num_blocks=totals,
    )
    lengths, indices, weights, pos, permute, mapping = out
    keys: List[str] = []
    for _ in range(num_buckets):
        keys.extend(kjt.keys())
    bucketized = KeyedJaggedTensor(
        keys=keys, values=indices, weights=pos if bucketize_pos else weights, lengths=lengths.view(-1),
    )
    return bucketized, permute, mapping


@public_at("recsys_lib.distributed.sharding.rw_sharding")
class InferRwSparseFeaturesDist(BaseSparseFeaturesDist[InputDistOutputs]):
    """Bucketizes ids by row block and hands each device its KJT (see the module docstring).

    Args:
        world_size: devices ``W`` (one row block each).
        num_features: features of the KJTs it receives.
        feature_hash_sizes: table rows of each feature (blocks of ``ceil(R / W)``).
        feature_total_num_buckets: per feature, hash buckets (blocks of ``ceil(R / buckets)``, ``buckets`` a
            multiple of ``W``) when ``embedding_shard_metadata`` is not given.
        device: device type of the ranks (``cpu``: every KJT stays on the CPU; else ``<type>:<rank>``).
        is_sequence: also return the unbucketize permutation, the bucket of every id and the bucketized lengths.
        has_feature_processor: send each id's position in its bag as its weight when the KJT has no weights.
        need_pos: send positions as weights when the KJT has weights.
        embedding_shard_metadata: per feature, its row boundaries ``[0, o_1, ..., R]`` (uneven row blocks, see
            ``get_embedding_shard_metadata``).
        keep_original_indices: (sequences) send table rows instead of rows local to the block.
    """

    def __init__(
        self,
        world_size: int,
        num_features: int,
        feature_hash_sizes: List[int],
        feature_total_num_buckets: Optional[List[int]] = None,
        device: Optional[torch.device] = None,
        is_sequence: bool = False,
        has_feature_processor: bool = False,
        need_pos: bool = False,
        embedding_shard_metadata: Optional[List[List[int]]] = None,
        keep_original_indices: bool = False,
    ) -> None:
        super().__init__()
        if len(feature_hash_sizes) != num_features:
            raise ValueError(f"InferRwSparseFeaturesDist: {len(feature_hash_sizes)} feature_hash_sizes for "
                             f"{num_features} features")
        self._world_size = world_size
        self._num_features = num_features
        self._hash_sizes: List[int] = [int(h) for h in feature_hash_sizes]
        blocks: List[int] = []
        for i, rows in enumerate(feature_hash_sizes):
            divisor = world_size
            if feature_total_num_buckets is not None and embedding_shard_metadata is None:
                if feature_total_num_buckets[i] % world_size != 0:
                    raise ValueError(f"InferRwSparseFeaturesDist: feature {i} has {feature_total_num_buckets[i]} "
                                     f"buckets, not a multiple of world_size {world_size}")
                divisor = feature_total_num_buckets[i]
            blocks.append((rows + divisor - 1) // divisor)
        self.register_buffer("feature_block_sizes", torch.tensor(blocks, dtype=torch.int64), persistent=False)
        self._total_num_buckets: Optional[torch.Tensor] = (
            torch.tensor(feature_total_num_buckets, dtype=torch.int64) if feature_total_num_buckets else None
        )
        self._row_pos: Optional[List[torch.Tensor]] = None
        if embedding_shard_metadata:
            self._row_pos = [torch.tensor(p, dtype=torch.int64) for p in embedding_shard_metadata]
        self._dist = KJTOneToAll(splits=[num_features] * world_size, world_size=world_size, device=device)
        self._is_sequence = is_sequence
        self._has_feature_processor = has_feature_processor
        self._need_pos = need_pos
        self._keep_original_indices = keep_original_indices

    def get_block_bucketize_row_pos(self) -> Optional[List[torch.Tensor]]:
        """Each feature's row boundaries (``embedding_shard_metadata``), or ``None`` for even row blocks."""
        return self._row_pos

    def move_buffer(self, sparse_features: KeyedJaggedTensor) -> None:
        """Puts the block sizes, bucket counts and row boundaries on the KJT's device with its ids' dtype."""
        self.feature_block_sizes = convert_tensor(self.feature_block_sizes, sparse_features)
        if self._total_num_buckets is not None:
            self._total_num_buckets = convert_tensor(self._total_num_buckets, sparse_features)
        if self._row_pos is not None:
            self._row_pos = [convert_tensor(p, sparse_features) for p in self._row_pos]

    def forward(self, sparse_features: KeyedJaggedTensor) -> InputDistOutputs:
        if self._total_num_buckets is None:  # FBGEMM would send an out-of-range id to some rank's wrong row
            check_ids(sparse_features, self._hash_sizes, "row-wise inference input dist")
        self.move_buffer(sparse_features)
        row_pos = self.get_block_bucketize_row_pos()
        pos = self._has_feature_processor if sparse_features.weights_or_none() is None else self._need_pos
        bucketized, permute, mapping = bucketize_for_inference(
            sparse_features, self._world_size, self.feature_block_sizes, self._total_num_buckets, pos, row_pos,
            self._is_sequence, self._keep_original_indices,
        )
        features = self._dist(bucketized)
        if not self._is_sequence:
            return InputDistOutputs(features=features)
        return InputDistOutputs(
            features=features, unbucketize_permute_tensor=permute, bucket_mapping_tensor=mapping,
            bucketized_length=bucketized.lengths().view(self._world_size * self._num_features, -1),
        )


@public_at("recsys_lib.distributed.sharding.rw_sharding")
class InferRwPooledEmbeddingDist(BaseEmbeddingDist[NullShardingContext, List[torch.Tensor], torch.Tensor]):
    """Adds every device's pooled partial sums ``(B, ΣD)`` on ``device`` (``EmbeddingsAllToOneReduce``).

    Args:
        device: where the sum is made and returned.
        world_size: devices (one tensor each).
    """

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._dist = EmbeddingsAllToOneReduce(device=device, world_size=world_size)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[NullShardingContext] = None
    ) -> torch.Tensor:
        return self._dist(local_embs)


@public_at("recsys_lib.distributed.sharding.rw_sequence_sharding")
class InferRwSequenceEmbeddingDist(
    BaseEmbeddingDist[InferSequenceShardingContext, List[torch.Tensor], List[torch.Tensor]]
):
    """Moves every device's sequence rows ``(N_r, D)`` to ``device``; rows of CPU (or SSD) shards stay put.

    Args:
        device: where the rows go.
        world_size: devices (one tensor each).
        device_type_from_sharding_infos: the shards' device type (``"cpu"`` / ``"ssd"``: nothing moves), or one
            type per rank (heterogeneous: only the non-CPU ranks' rows move).
    """

    def __init__(
        self,
        device: torch.device,
        world_size: int,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__()
        self._device_type_from_sharding_infos = device_type_from_sharding_infos
        per_rank: List[str] = []
        if isinstance(device_type_from_sharding_infos, tuple):
            per_rank = list(device_type_from_sharding_infos)
            if "ssd" in per_rank:
                raise ValueError("InferRwSequenceEmbeddingDist: a table spread over several device types cannot "
                                 "have ssd shards")
        self._per_rank_types: List[str] = per_rank
        on_cpu = sum(1 for t in per_rank if t == "cpu") if per_rank else (
            world_size if device_type_from_sharding_infos == "cpu" else 0)
        self._stays: bool = device_type_from_sharding_infos in ("cpu", "ssd")
        self._device_dist = SeqEmbeddingsAllToOne(device, world_size - on_cpu)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[InferSequenceShardingContext] = None
    ) -> List[torch.Tensor]:
        if len(self._per_rank_types) > 0:
            if len(self._per_rank_types) != len(local_embs):
                raise ValueError(f"InferRwSequenceEmbeddingDist: {len(local_embs)} tensors for "
                                 f"{len(self._per_rank_types)} device types")
            moved = self._device_dist([t for t, d in zip(local_embs, self._per_rank_types) if d != "cpu"])
            out: List[torch.Tensor] = []
            k = 0
            for t, d in zip(local_embs, self._per_rank_types):
                if d == "cpu":
                    out.append(t)
                else:
                    out.append(moved[k])
                    k += 1
            return out
        if self._stays:
            return local_embs
        return self._device_dist(local_embs)
