"""Contexts and the strategy interface of sharded object pools (``torchrec.distributed.tensor_sharding``).

A pool sharding builds four dist modules (ids and values, for update and for lookup), the per-call context they
share, and this rank's state as ``ShardedTensor`` s. Row-wise: ``sharding/rw_tensor_pool_sharding.py`` and
``sharding/rw_kjt_pool_sharding.py``.
"""

import abc
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.rows import block_size, local_pool_size
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
    def get_sharded_states_to_register(self) -> Iterable[Tuple[str, torch.Tensor]]:
        """``(buffer name, ShardedTensor)`` of this rank's state (the row-wise subclasses take the pool's lookup,
        as in TorchRec)."""

    @abc.abstractmethod
    def create_context(self) -> ObjectPoolShardingContext:
        """A fresh per-call context."""


def memory_split(pool_size: int, world_size: int, memory_capacity_per_rank: Optional[List[int]]) -> List[int]:
    """Rows per rank: even blocks, or proportional to ``memory_capacity_per_rank`` (the last rank the rest)."""
    if memory_capacity_per_rank is None:
        return [local_pool_size(pool_size, world_size, r) for r in range(world_size)]
    if len(memory_capacity_per_rank) != world_size:
        raise ValueError(f"memory_capacity_per_rank has {len(memory_capacity_per_rank)} entries for world size "
                         f"{world_size}")
    total = sum(memory_capacity_per_rank)
    rows = [int(cap / total * pool_size) for cap in memory_capacity_per_rank[:-1]]
    return rows + [pool_size - sum(rows)]


class InferObjectPoolSharding(abc.ABC):
    """Row split of an inference pool: even blocks of ``ceil(P / W)``, or by ``memory_capacity_per_rank``
    (``_pool/infer.py``).

    Args:
        pool_size: rows ``P``.
        env: ``world_size`` "ranks" in this process.
        device: where ids and results travel.
        memory_capacity_per_rank: uneven split by memory.
    """

    def __init__(self, pool_size: int, env: ShardingEnv, device: torch.device,
                 memory_capacity_per_rank: Optional[List[int]] = None) -> None:
        self._pool_size = pool_size
        self._env = env
        self._pg = env.process_group
        self._world_size: int = env.world_size
        self._rank: int = env.rank
        self._device = device
        self._block_size: int = block_size(pool_size, env.world_size)
        self._last_block_size: int = pool_size - self._block_size * (env.world_size - 1)
        self.local_pool_size_per_rank: List[int] = memory_split(pool_size, env.world_size, memory_capacity_per_rank)
        self._block_size_t: torch.Tensor = torch.tensor([self._block_size], device=device, dtype=torch.long)
        offsets = [0]
        for n in self.local_pool_size_per_rank:
            offsets.append(offsets[-1] + n)
        self._block_bucketize_row_pos: Optional[List[torch.Tensor]] = (
            None if memory_capacity_per_rank is None else [torch.tensor(offsets, device=device)]
        )

    @abc.abstractmethod
    def create_lookup_ids_dist(self) -> nn.Module:
        """Ids to their owning ranks."""

    @abc.abstractmethod
    def create_lookup_values_dist(self) -> nn.Module:
        """Looked-up values onto the output device."""


