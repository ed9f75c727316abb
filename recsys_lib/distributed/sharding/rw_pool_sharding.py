"""Row-wise id distribution of sharded object pools (``torchrec.distributed.sharding.rw_pool_sharding``).

Ids go to the rank owning their block of slots (``_pool/rows.py``) as *local* slot ids: one all-to-all of the
counts, one of the ids. With ``num_replicas = R > 1`` (replicated row-wise) the ``W = R * B`` ranks hold ``R``
copies of a pool split in ``B`` blocks; block ``b`` lives on ranks ``b, B + b, ...``, and the bucketized ids are
sent to each copy (counts ``(B,)`` repeated ``R`` times). Update and lookup share the module; they differ in which way the values travel next::

    update:  send = ids per owner,          receive = ids each rank sends here   (values follow the ids)
    lookup:  send = ids each rank asked,    receive = ids per owner              (values come back)
"""

from typing import Optional

import torch
import torch.distributed as dist

from recsys_lib.distributed._collectives.primitives import all_to_all_flat
from recsys_lib.distributed._core.awaitable import Awaitable, NoWait
from recsys_lib.distributed._pool.rows import bucketize_ids
from recsys_lib.distributed.tensor_sharding import ObjectPoolRwShardingContext


class RwObjectPoolIDsDist(torch.nn.Module):
    """Bucketizes ids by slot block and sends them to their owners.

    Args:
        pg: process group of the all-to-alls.
        is_update: sets which of the context's counts are "send" and "receive" for the values that follow.
        bucketize_world_size: number of blocks (default: the group's size).
        num_replicas: copies of the pool (replicated row-wise): every id goes to its block's rank in each copy.
            ``bucketize_world_size * num_replicas`` must equal the group's size.

    Example::

        dist = RwObjectPoolIDsDist(pg, is_update=True)
        ctx = ObjectPoolRwShardingContext(block_size=torch.tensor([5]))
        local_ids = dist(ctx, torch.tensor([0, 7, 2])).wait().wait()   # on rank 0: 0, 2 (+ other ranks' ids)
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        is_update: bool = True,
        bucketize_world_size: Optional[int] = None,
        num_replicas: int = 1,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._world_size = dist.get_world_size(pg)
        self._is_update = is_update
        self._bucketize_world_size = bucketize_world_size or self._world_size
        if num_replicas < 1 or self._bucketize_world_size * num_replicas != self._world_size:
            raise ValueError(f"RwObjectPoolIDsDist: bucketize_world_size={self._bucketize_world_size} x "
                             f"num_replicas={num_replicas} must equal the group's size {self._world_size}")
        self._num_replicas = num_replicas

    def forward(self, ctx: ObjectPoolRwShardingContext, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        """Args: ctx (``block_size`` set; counts and permutations are filled in), ids ``(N,)``.
        Returns: local slot ids received here ``(M,)``, grouped by source rank."""
        assert ctx.block_size is not None, "RwObjectPoolIDsDist: the context needs block_size"
        local, counts, unbucketize = bucketize_ids(ids, int(ctx.block_size.item()), self._bucketize_world_size)
        if self._num_replicas > 1:
            local, counts = local.repeat(self._num_replicas), counts.repeat(self._num_replicas)
        w = self._world_size
        received_counts = all_to_all_flat(counts, [1] * w, [1] * w, self._pg).wait()
        ctx.ids_before_input_dist = ids
        ctx.unbucketize_permute = unbucketize
        ctx.bucketize_permute = None
        if self._is_update:
            ctx.num_ids_each_rank_to_send, ctx.num_ids_each_rank_to_receive = counts, received_counts
        else:
            ctx.num_ids_each_rank_to_send, ctx.num_ids_each_rank_to_receive = received_counts, counts
        out = all_to_all_flat(local, counts.tolist(), received_counts.tolist(), self._pg).wait()
        return NoWait(NoWait(out))


from recsys_lib.distributed._pool.infer import (  # noqa: E402,F401  (TorchRec defines them in this module)
    InferRwObjectPoolInputDist,
)
