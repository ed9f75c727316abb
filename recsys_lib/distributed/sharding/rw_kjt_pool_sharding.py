"""Row-wise ``KeyedJaggedTensorPool`` sharding (``torchrec.distributed.sharding.rw_kjt_pool_sharding``).

Slots are spread in blocks as for tensor pools (``_pool/rows.py``); a slot's jagged features travel as one
slot-major segment (``_pool/jagged.py``): lengths first, then values (and weights).

Replicated row-wise: the pool is split over the ``L`` ranks of one host (``LOCAL_WORLD_SIZE``) and copied on each
of the ``R = W / L`` hosts. Updates go to the owning local rank of every host (world group); lookups stay on the
host (intra-host group)::

    P = 10, W = 4, L = 2: block 5;  ranks 0, 2: slots [0, 5)   ranks 1, 3: slots [5, 10)
    update id 7 on rank 0 -> ranks 1 and 3;   lookup id 7 on rank 2 -> rank 3
"""

from typing import Iterable, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.jagged import kjt_to_slot_major, select_slots, send_slots
from recsys_lib.distributed._pool.rows import RwPoolLayout
from recsys_lib.distributed._pool.state import row_sharded_tensor
from recsys_lib.distributed.sharding.rw_pool_sharding import RwObjectPoolIDsDist
from recsys_lib.distributed.tensor_sharding import (
    ObjectPoolReplicatedRwShardingContext,
    ObjectPoolRwShardingContext,
    ObjectPoolSharding,
)
from recsys_lib.modules.object_pool_lookups import KeyedJaggedTensorPoolLookup
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


class RwKeyedJaggedTensorPoolLookupValuesDist(torch.nn.Module):
    """Looked-up slots (slot-major ``JaggedTensor``) back to the ranks that asked, in bucketized order.

    Args:
        num_features: ``F``.
        env: world, rank, process group.
    """

    def __init__(self, num_features: int, env: ShardingEnv) -> None:
        super().__init__()
        self._num_features = num_features
        self._pg = env.process_group

    def forward(self, ctx: ObjectPoolRwShardingContext, jagged_tensor: JaggedTensor) -> Awaitable[JaggedTensor]:
        assert ctx.num_ids_each_rank_to_send is not None and ctx.num_ids_each_rank_to_receive is not None
        return NoWait(send_slots(jagged_tensor, self._num_features, ctx.num_ids_each_rank_to_send,
                                 ctx.num_ids_each_rank_to_receive, self._pg))


class RwKeyedJaggedTensorPoolUpdateValuesDist(torch.nn.Module):
    """The samples of an update KJT (stride ``N``, pool feature order) to the owners of their ids.

    Args:
        num_features: ``F``.
        env: world, rank, process group.
        device: device of the values.
        num_replicas: copies of the pool (replicated row-wise): the samples go to their owner in every copy, in
            the rank order of ``RwObjectPoolIDsDist`` with the same ``num_replicas``.
    """

    def __init__(self, num_features: int, env: ShardingEnv, device: torch.device, num_replicas: int = 1) -> None:
        super().__init__()
        if num_replicas < 1:
            raise ValueError(f"RwKeyedJaggedTensorPoolUpdateValuesDist: num_replicas={num_replicas} must be >= 1")
        self._num_replicas = num_replicas
        self._num_features = num_features
        self._pg = env.process_group
        self._device = device

    def forward(self, values: KeyedJaggedTensor, ctx: ObjectPoolRwShardingContext) -> Awaitable[JaggedTensor]:
        """Returns the slot-major rows of the ids this rank owns, in the order of the received ids."""
        assert ctx.unbucketize_permute is not None and ctx.num_ids_each_rank_to_send is not None
        assert ctx.num_ids_each_rank_to_receive is not None
        order = torch.empty_like(ctx.unbucketize_permute)
        order[ctx.unbucketize_permute] = torch.arange(order.numel(), device=order.device)
        if self._num_replicas > 1:
            order = order.repeat(self._num_replicas)
        slots = select_slots(kjt_to_slot_major(values), self._num_features, order)
        return NoWait(send_slots(slots, self._num_features, ctx.num_ids_each_rank_to_send,
                                 ctx.num_ids_each_rank_to_receive, self._pg))


class KeyedJaggedTensorPoolRwSharding(ObjectPoolSharding):
    """Row-wise sharding of a ``KeyedJaggedTensorPool``.

    Args:
        env: world, rank, process group.
        device: where the local slots live.
        pool_size: ``P``.
        num_features: ``F``.
    """

    def __init__(self, env: ShardingEnv, device: torch.device, pool_size: int, num_features: int) -> None:
        self._env = env
        self._pg = env.process_group
        self._world_size = env.world_size
        self._rank = env.rank
        self._device = device
        self._pool_size = pool_size
        self._num_features = num_features
        self._layout = RwPoolLayout(pool_size, env.world_size, env.rank)
        self._block_size, self.local_pool_size, self._block_size_t = self._layout.sharding_fields(device)

    def create_update_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._pg, is_update=True)

    def create_update_values_dist(self) -> RwKeyedJaggedTensorPoolUpdateValuesDist:
        return RwKeyedJaggedTensorPoolUpdateValuesDist(self._num_features, self._env, self._device)

    def create_lookup_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._pg, is_update=False)

    def create_lookup_values_dist(self) -> RwKeyedJaggedTensorPoolLookupValuesDist:
        return RwKeyedJaggedTensorPoolLookupValuesDist(self._num_features, self._env)

    def get_sharded_states_to_register(  # type: ignore[override]
        self, lookup: KeyedJaggedTensorPoolLookup
    ) -> Iterable[Tuple[str, torch.Tensor]]:
        for fqn, tensor in lookup.states_to_register():
            yield fqn, row_sharded_tensor(tensor, self._layout.row_ranges, self._pool_size, self._rank, self._pg)

    def create_context(self) -> ObjectPoolRwShardingContext:
        return ObjectPoolRwShardingContext(block_size=self._block_size_t)


class KeyedJaggedTensorPoolRwReplicatedSharding(ObjectPoolSharding):
    """Row-wise sharding of a ``KeyedJaggedTensorPool`` within each host, replicated across hosts.

    Builds the intra- / cross-host groups (a collective: every rank constructs it together).

    Args:
        env: world, rank, process group (the world group); ranks per host from ``env.local_world_size``.
        device: where the local slots live.
        pool_size: ``P``.
        num_features: ``F``.
    """

    def __init__(self, env: ShardingEnv, device: torch.device, pool_size: int, num_features: int) -> None:
        self._env, self._pg, self._device = env, env.process_group, device
        self._pool_size, self._num_features = pool_size, num_features
        self._local_world_size: int = env.local_world_size
        self._num_replicas: int = env.world_size // self._local_world_size
        intra_pg, _cross_pg = env.intra_and_cross_node_pg(device, backend=dist.get_backend(self._pg))
        assert intra_pg is not None, "KeyedJaggedTensorPoolRwReplicatedSharding: no intra-host process group"
        self._intra_pg: dist.ProcessGroup = intra_pg
        self._local_rank: int = dist.get_rank(intra_pg)
        self._local_env = ShardingEnv(dist.get_world_size(intra_pg), self._local_rank, intra_pg)
        self._layout = RwPoolLayout(pool_size, self._local_world_size, self._local_rank)
        self._block_size, self.local_pool_size, self._block_size_t = self._layout.sharding_fields(device)

    def create_update_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._pg, is_update=True, bucketize_world_size=self._local_world_size,
                                   num_replicas=self._num_replicas)

    def create_update_values_dist(self) -> RwKeyedJaggedTensorPoolUpdateValuesDist:
        return RwKeyedJaggedTensorPoolUpdateValuesDist(self._num_features, self._env, self._device,
                                                       num_replicas=self._num_replicas)

    def create_lookup_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._intra_pg, is_update=False)

    def create_lookup_values_dist(self) -> RwKeyedJaggedTensorPoolLookupValuesDist:
        return RwKeyedJaggedTensorPoolLookupValuesDist(self._num_features, self._local_env)

    def get_sharded_states_to_register(  # type: ignore[override]
        self, lookup: KeyedJaggedTensorPoolLookup
    ) -> Iterable[Tuple[str, torch.Tensor]]:
        """Each state as a ``ShardedTensor`` of ``(P, ...)`` over this host's group (every host holds a copy).

        Shard placements name the host's world ranks (``ShardedTensor`` requires world ranks)."""
        host_ranks = dist.get_process_group_ranks(self._intra_pg)
        for fqn, tensor in lookup.states_to_register():
            yield fqn, row_sharded_tensor(tensor, self._layout.row_ranges, self._pool_size, self._local_rank,
                                          self._intra_pg, host_ranks)

    def create_context(self) -> ObjectPoolReplicatedRwShardingContext:
        return ObjectPoolReplicatedRwShardingContext(block_size=self._block_size_t)


from recsys_lib.distributed._pool.infer_kjt import (  # noqa: E402,F401  (TorchRec defines them in this module)
    InferRwKeyedJaggedTensorPoolOutputDist,
    InferRwKeyedJaggedTensorPoolSharding,
)
