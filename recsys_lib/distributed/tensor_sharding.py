"""Contexts and the strategy interface of sharded object pools (``torchrec.distributed.tensor_sharding``).

A pool sharding builds four dist modules (ids and values, for update and for lookup), the per-call context they
share, and this rank's state as ``ShardedTensor`` s. Row-wise: ``sharding/rw_tensor_pool_sharding.py`` and
``sharding/rw_kjt_pool_sharding.py``.
"""

import abc
from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import torch

from recsys_lib.streamable import Multistreamable


def _record(t: Optional[torch.Tensor], stream: torch.Stream) -> None:
    if t is not None:
        t.record_stream(stream)


@dataclass
class ObjectPoolShardingContext(Multistreamable):
    """Per-call state: the ids as given, how many go to / come from each rank, the (un)bucketize permutations."""

    ids_before_input_dist: Optional[torch.Tensor] = None
    num_ids_each_rank_to_receive: Optional[torch.Tensor] = None
    num_ids_each_rank_to_send: Optional[torch.Tensor] = None
    bucketize_permute: Optional[torch.Tensor] = None
    unbucketize_permute: Optional[torch.Tensor] = None

    def record_stream(self, stream: torch.Stream) -> None:
        for t in (self.ids_before_input_dist, self.num_ids_each_rank_to_receive, self.num_ids_each_rank_to_send,
                  self.bucketize_permute, self.unbucketize_permute):
            _record(t, stream)


@dataclass
class RwShardingContext(Multistreamable):
    """Row-wise: the block size ``ceil(P / W)`` as a ``(1,)`` tensor."""

    block_size: Optional[torch.Tensor] = None

    def record_stream(self, stream: torch.Stream) -> None:
        _record(self.block_size, stream)


@dataclass
class ObjectPoolRwShardingContext(ObjectPoolShardingContext, RwShardingContext):
    """Row-wise pool context."""

    def record_stream(self, stream: torch.Stream) -> None:
        ObjectPoolShardingContext.record_stream(self, stream)
        RwShardingContext.record_stream(self, stream)


@dataclass
class ObjectPoolReplicatedRwShardingContext(ObjectPoolRwShardingContext):
    """Replicated row-wise pool context (same fields)."""


@dataclass
class TensorPoolRwShardingContext(ObjectPoolRwShardingContext):
    """Row-wise ``TensorPool`` context (same fields)."""


class ObjectPoolSharding(abc.ABC):
    """A pool sharding strategy: dist modules, context, sharded state."""

    @abc.abstractmethod
    def create_update_ids_dist(self) -> torch.nn.Module:
        """Ids of an update to their owners."""

    @abc.abstractmethod
    def create_update_values_dist(self) -> torch.nn.Module:
        """Values of an update to their owners."""

    @abc.abstractmethod
    def create_lookup_ids_dist(self) -> torch.nn.Module:
        """Ids of a lookup to their owners."""

    @abc.abstractmethod
    def create_lookup_values_dist(self) -> torch.nn.Module:
        """Looked-up values back to the askers."""

    @abc.abstractmethod
    def get_sharded_states_to_register(self, *args: object) -> Iterable[Tuple[str, torch.Tensor]]:
        """``(buffer name, ShardedTensor)`` of this rank's state."""

    @abc.abstractmethod
    def create_context(self) -> ObjectPoolShardingContext:
        """A fresh per-call context."""
