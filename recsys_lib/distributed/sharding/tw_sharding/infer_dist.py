"""Table-wise inference dists on one host (TorchRec's ``InferTw*`` names): every "rank" is a device of this process.

Input: the KJT split by keys, ``features_per_rank[r]`` consecutive features to device ``r``; output: the devices'
pooled outputs side by side on one device (``(B, Σ_r D_r)``), or their sequence rows moved to it::

    features [f0 f1 f2], features_per_rank [2, 1]:   rank 0: f0 f1     rank 1: f2
    pooled: [B, D_f0 + D_f1] | [B, D_f2]  ->  [B, D_f0 + D_f1 + D_f2]
"""

from typing import List, Optional

import torch

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import NullShardingContext
from recsys_lib.distributed._dist.all_to_one import EmbeddingsAllToOne, SeqEmbeddingsAllToOne
from recsys_lib.distributed._dist.kjt import KJTOneToAll
from recsys_lib.distributed.embedding_sharding import InputDistOutputs
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, BaseSparseFeaturesDist
from recsys_lib.distributed.sharding.sequence_sharding import InferSequenceShardingContext
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@public_at("recsys_lib.distributed.sharding.tw_sharding")
class InferTwSparseFeaturesDist(BaseSparseFeaturesDist[InputDistOutputs]):
    """Splits a KJT by keys into one KJT per device (``KJTOneToAll``).

    Args:
        features_per_rank: consecutive features each device receives (one entry per device).
        world_size: devices.
        device: device type of the ranks (``cpu``: every KJT stays on the CPU; else ``<type>:<rank>``).
    """

    def __init__(self, features_per_rank: List[int], world_size: int, device: Optional[torch.device] = None) -> None:
        super().__init__()
        self._dist = KJTOneToAll(splits=features_per_rank, world_size=world_size, device=device)

    def forward(self, sparse_features: KeyedJaggedTensor) -> InputDistOutputs:
        return InputDistOutputs(features=self._dist(sparse_features))


@public_at("recsys_lib.distributed.sharding.tw_sharding")
class InferTwPooledEmbeddingDist(BaseEmbeddingDist[NullShardingContext, List[torch.Tensor], torch.Tensor]):
    """Concatenates every device's pooled output ``(B, D_r)`` along columns on ``device``.

    Args:
        device: where the result is returned.
        world_size: devices (one tensor each).
    """

    def __init__(self, device: torch.device, world_size: int) -> None:
        super().__init__()
        self._dist = EmbeddingsAllToOne(device, world_size, 1)

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[NullShardingContext] = None
    ) -> torch.Tensor:
        return self._dist(local_embs)


@public_at("recsys_lib.distributed.sharding.tw_sequence_sharding")
class InferTwSequenceEmbeddingDist(
    BaseEmbeddingDist[InferSequenceShardingContext, List[torch.Tensor], List[torch.Tensor]]
):
    """Moves the sequence rows ``(N_r, D)`` of every device holding tables to ``device``.

    Args:
        device: where the rows go.
        world_size: devices.
        storage_device_type_from_sharding_infos: ``"cpu"`` / ``"ssd"``: the rows stay where they are.
        embedding_names_per_rank: the names each device looks up; devices with none have no output and are
            skipped (``None``: every device has one).
    """

    def __init__(
        self,
        device: torch.device,
        world_size: int,
        storage_device_type_from_sharding_infos: Optional[str] = None,
        embedding_names_per_rank: Optional[List[List[str]]] = None,
    ) -> None:
        super().__init__()
        self._has_output: List[bool] = (
            [True] * world_size if embedding_names_per_rank is None
            else [len(names) > 0 for names in embedding_names_per_rank]
        )
        self._dist = SeqEmbeddingsAllToOne(device, sum(1 for h in self._has_output if h))
        self._storage_device_type_from_sharding_infos = storage_device_type_from_sharding_infos
        self._embedding_names_per_rank = embedding_names_per_rank
        self._stays: bool = storage_device_type_from_sharding_infos in ("cpu", "ssd")

    def forward(
        self, local_embs: List[torch.Tensor], sharding_ctx: Optional[InferSequenceShardingContext] = None
    ) -> List[torch.Tensor]:
        if sharding_ctx is None:
            raise ValueError("InferTwSequenceEmbeddingDist needs the InferSequenceShardingContext of the batch")
        if self._stays:
            return local_embs
        kept: List[torch.Tensor] = []
        for i, t in enumerate(local_embs):
            if i < len(self._has_output) and self._has_output[i]:
                kept.append(t)
        return self._dist(kept)
