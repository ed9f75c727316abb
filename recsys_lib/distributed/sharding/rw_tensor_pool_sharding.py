"""Row-wise ``TensorPool`` sharding (``torchrec.distributed.sharding.rw_tensor_pool_sharding``).

Rank ``r`` stores slots ``[r * block, min(P, (r + 1) * block))``, ``block = ceil(P / W)`` (``_pool/rows.py``).
Rows travel with one all-to-all of ``(N, D)`` values after the ids (``rw_pool_sharding.py``).
"""

from typing import Iterable, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.primitives import all_to_all_flat
from recsys_lib.distributed._core.awaitable import LazyAwaitable, LazyNoWait
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.rows import RwPoolLayout
from recsys_lib.distributed._pool.state import row_sharded_tensor
from recsys_lib.distributed.sharding.rw_pool_sharding import RwObjectPoolIDsDist
from recsys_lib.distributed.tensor_sharding import ObjectPoolRwShardingContext, ObjectPoolSharding
from recsys_lib.modules.object_pool_lookups import TensorPoolLookup


def send_rows(values: torch.Tensor, send: torch.Tensor, receive: torch.Tensor, pg: dist.ProcessGroup) -> torch.Tensor:
    """All-to-all of rows ``(N, ...)``: ``send[r]`` rows to rank r, ``receive[r]`` rows from it."""
    width = 1
    for s in values.shape[1:]:
        width *= int(s)
    flat = values.contiguous().reshape(-1)
    out = all_to_all_flat(flat, [int(n) * width for n in send.tolist()], [int(n) * width for n in receive.tolist()],
                          pg).wait()
    return out.view([-1] + list(values.shape[1:]))


class RwTensorPoolValuesDist(torch.nn.Module):
    """Moves rows between ranks: to the owners on update (in bucketized order), back to the askers on lookup.

    Args:
        pg: process group.
        is_update: reorder the caller's rows into the ids' bucketized order first.
    """

    def __init__(self, pg: dist.ProcessGroup, is_update: bool) -> None:
        super().__init__()
        self._pg = pg
        self._is_update = is_update

    def forward(self, ctx: ObjectPoolRwShardingContext, values: torch.Tensor) -> LazyAwaitable[torch.Tensor]:
        """Args: ctx (filled by the ids dist), values ``(N, D)``. Returns: the rows received here."""
        assert ctx.num_ids_each_rank_to_send is not None and ctx.num_ids_each_rank_to_receive is not None
        if self._is_update:
            assert ctx.unbucketize_permute is not None
            order = torch.empty_like(ctx.unbucketize_permute)
            order[ctx.unbucketize_permute] = torch.arange(order.numel(), device=order.device)
            values = values[order]
        return LazyNoWait(send_rows(values, ctx.num_ids_each_rank_to_send, ctx.num_ids_each_rank_to_receive, self._pg))


class TensorPoolRwSharding(ObjectPoolSharding):
    """Row-wise sharding of a ``TensorPool`` of ``pool_size`` rows of width ``dim``.

    Args:
        pool_size: ``P``.
        dim: ``D``.
        env: world, rank, process group.
        device: where the local rows live.
    """

    def __init__(self, pool_size: int, dim: int, env: ShardingEnv, device: torch.device) -> None:
        self._env = env
        self._pg = env.process_group
        self._world_size = env.world_size
        self._rank = env.rank
        self._device = device
        self._pool_size = pool_size
        self._dim = dim
        self._layout = RwPoolLayout(pool_size, env.world_size, env.rank)
        self._block_size, self.local_pool_size, self._block_size_t = self._layout.sharding_fields(device)

    def create_update_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._pg, is_update=True)

    def create_update_values_dist(self) -> RwTensorPoolValuesDist:
        return RwTensorPoolValuesDist(self._pg, is_update=True)

    def create_lookup_ids_dist(self) -> RwObjectPoolIDsDist:
        return RwObjectPoolIDsDist(self._pg, is_update=False)

    def create_lookup_values_dist(self) -> RwTensorPoolValuesDist:
        return RwTensorPoolValuesDist(self._pg, is_update=False)

    def get_sharded_states_to_register(self, lookup: TensorPoolLookup) -> Iterable[Tuple[str, torch.Tensor]]:  # type: ignore[override]
        for fqn, tensor in lookup.states_to_register():
            yield fqn, row_sharded_tensor(tensor, self._layout.row_ranges, self._pool_size, self._rank, self._pg)

    def create_context(self) -> ObjectPoolRwShardingContext:
        return ObjectPoolRwShardingContext(block_size=self._block_size_t)


from recsys_lib.distributed._pool.infer import (  # noqa: E402,F401  (TorchRec defines them in this module)
    InferRwTensorPoolOutputDist,
    InferRwTensorPoolSharding,
)
