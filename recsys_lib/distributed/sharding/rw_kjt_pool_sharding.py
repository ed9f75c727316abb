"""Row-wise ``KeyedJaggedTensorPool`` sharding (``torchrec.distributed.sharding.rw_kjt_pool_sharding``).

Slots are spread in blocks as for tensor pools (``_pool/rows.py``); a slot's jagged features travel as one
slot-major segment (``_pool/jagged.py``): lengths first, then values (and weights).
"""

from typing import Iterable, Tuple

import torch

from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.jagged import kjt_to_slot_major, select_slots, send_slots
from recsys_lib.distributed._pool.rows import RwPoolLayout
from recsys_lib.distributed._pool.state import row_sharded_tensor
from recsys_lib.distributed.sharding.rw_pool_sharding import RwObjectPoolIDsDist
from recsys_lib.distributed.tensor_sharding import ObjectPoolRwShardingContext, ObjectPoolSharding
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
        num_replicas: copies of the pool; only 1 is provided.
    """

    def __init__(self, num_features: int, env: ShardingEnv, device: torch.device, num_replicas: int = 1) -> None:
        super().__init__()
        if num_replicas != 1:
            raise ValueError(f"RwKeyedJaggedTensorPoolUpdateValuesDist: num_replicas={num_replicas}; replicated "
                             "row-wise pools are not provided, use num_replicas=1")
        self._num_features = num_features
        self._pg = env.process_group
        self._device = device

    def forward(self, values: KeyedJaggedTensor, ctx: ObjectPoolRwShardingContext) -> Awaitable[JaggedTensor]:
        """Returns the slot-major rows of the ids this rank owns, in the order of the received ids."""
        assert ctx.unbucketize_permute is not None and ctx.num_ids_each_rank_to_send is not None
        assert ctx.num_ids_each_rank_to_receive is not None
        order = torch.empty_like(ctx.unbucketize_permute)
        order[ctx.unbucketize_permute] = torch.arange(order.numel(), device=order.device)
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
        self._block_size = self._layout.block_size
        self.local_pool_size: int = self._layout.local_pool_size
        self._block_size_t = torch.tensor([self._block_size], dtype=torch.long, device=device)

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


from recsys_lib.distributed._pool.infer_kjt import (  # noqa: E402,F401  (TorchRec defines them in this module)
    InferRwKeyedJaggedTensorPoolOutputDist,
    InferRwKeyedJaggedTensorPoolSharding,
)
