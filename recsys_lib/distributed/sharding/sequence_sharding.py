"""TorchRec path ``sharding.sequence_sharding``: ``SequenceShardingContext``, the per-batch context of the sequence
(``EmbeddingCollection``) shardings, and ``InferSequenceShardingContext``, its inference counterpart.

Our ``EmbeddingShardingContext`` already carries the sequence fields (``input_splits``, ``output_splits``,
``lengths_after_input_dist``); this dataclass names them as TorchRec does, adding the KJT before the input dist,
the feature recat and the unbucketize permutation.
"""

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed.embedding_sharding import KJTList
from recsys_lib.streamable import Multistreamable
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingContext
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@public_at("recsys_lib.distributed.sharding.sequence_sharding")
@dataclass
class SequenceShardingContext(EmbeddingShardingContext):
    """Sequence sharding context.

    Args:
        batch_size_per_rank: ``B_r`` of every rank.
        batch_size_per_rank_per_feature: variable batch ``[r][f]``.
        batch_size_per_feature_pre_a2a: this rank's batch per feature before the input dist.
        variable_batch_per_feature: whether the batch is variable per feature.
        features_before_input_dist: the KJT this rank fed to the input dist.
        input_splits: ids sent to each rank; output_splits: ids received from each rank.
        sparse_features_recat: permutation regrouping the received features (feature-major → rank-major).
        unbucketize_permute_tensor: row-wise: maps bucketized ids back to the input order.
        lengths_after_input_dist: lengths of the KJT received by this rank.
    """

    batch_size_per_rank: List[int] = field(default_factory=list)
    batch_size_per_rank_per_feature: List[List[int]] = field(default_factory=list)
    batch_size_per_feature_pre_a2a: List[int] = field(default_factory=list)
    variable_batch_per_feature: bool = False
    features_before_input_dist: Optional[KeyedJaggedTensor] = None
    input_splits: List[int] = field(default_factory=list)
    output_splits: List[int] = field(default_factory=list)
    sparse_features_recat: Optional[torch.Tensor] = None
    unbucketize_permute_tensor: Optional[torch.Tensor] = None
    lengths_after_input_dist: Optional[torch.Tensor] = None

    def __post_init__(self) -> None:
        splits, lengths = (self.input_splits, self.output_splits), self.lengths_after_input_dist
        EmbeddingShardingContext.__post_init__(self)
        self.input_splits, self.output_splits = splits
        self.lengths_after_input_dist = lengths

    def record_stream(self, stream: torch.Stream) -> None:
        """Keeps this context's tensors alive on ``stream`` (pipelined training)."""
        super().record_stream(stream)
        for t in (self.sparse_features_recat, self.unbucketize_permute_tensor):
            if t is not None:
                t.record_stream(stream)
        if self.features_before_input_dist is not None:
            self.features_before_input_dist.record_stream(stream)


@public_at("recsys_lib.distributed.sharding.sequence_sharding")
@dataclass
class InferSequenceShardingContext(Multistreamable):
    """Per-batch context of a sequence inference sharding (one host, no process group).

    Args:
        features: the KJT of every rank after the input dist (``KJTList``).
        features_before_input_dist: the KJT the sharding received.
        unbucketize_permute_tensor: row-wise: position of each input id among the bucketized ids.
        bucket_mapping_tensor: row-wise: the rank each input id went to.
        bucketized_length: row-wise: bag lengths after bucketizing, ``(W * F, B)``.
        embedding_names_per_rank: the embedding names each rank looks up.
    """

    features: KJTList
    features_before_input_dist: Optional[KeyedJaggedTensor] = None
    unbucketize_permute_tensor: Optional[torch.Tensor] = None
    bucket_mapping_tensor: Optional[torch.Tensor] = None
    bucketized_length: Optional[torch.Tensor] = None
    embedding_names_per_rank: Optional[List[List[str]]] = None

    def record_stream(self, stream: torch.Stream) -> None:
        """Keeps this context's tensors alive on ``stream``."""
        for f in self.features:
            f.record_stream(stream)
        if self.features_before_input_dist is not None:
            self.features_before_input_dist.record_stream(stream)
        for t in (self.unbucketize_permute_tensor, self.bucket_mapping_tensor, self.bucketized_length):
            if t is not None:
                t.record_stream(stream)
