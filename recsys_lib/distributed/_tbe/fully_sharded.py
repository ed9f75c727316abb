"""Fully sharded fused kernels (2-D parallelism): the flat weights live as one shard per replica between
forward and backward.

With a 2-D environment (``ShardingEnv2D``: a sharding group and a ``replica_pg`` across copies of it), each copy
of a table holds the same rows on ``W = replica_pg.size()`` ranks. :class:`ShardedBatchedFusedEmbeddingBag`
(pooled) and :class:`ShardedBatchedFusedEmbedding` (sequence) save memory between forward and backward:

1. forward (training): the lookup runs on the full weights, then an asynchronous reduce-scatter of
   ``weights / W`` over ``replica_pg`` starts; its :class:`ReduceScatterResizeAwaitable`, when waited, frees the
   full flat buffer (storage resized to 0), keeping only this rank's ``ceil(N / W)`` values of the average;
2. backward (a full backward pre-hook): the shards are all-gathered back into the buffer, so the fused
   optimizer updates the replica-averaged weights with this rank's gradient.

Flat buffer of ``N`` values, padded to ``W * ceil(N / W)``::

    rank 0 keeps avg[0 : S]   rank 1 keeps avg[S : 2S]   ...   S = ceil(N / W)

On gloo the reduce-scatter is an all-to-all plus an ordered sum (``_collectives/primitives.py``).
"""

from typing import Any, Callable, List, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.primitives import Pending, all_gather_v, reduce_scatter_v
from recsys_lib.distributed._core.awaitable import LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig
from recsys_lib.distributed._tbe.kernel import fused_flat_weights
from recsys_lib.distributed._tbe.pooled import BatchedFusedEmbeddingBag
from recsys_lib.distributed._tbe.sequence import BatchedFusedEmbedding


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ReduceScatterResizeAwaitable(LazyAwaitable[torch.Tensor]):
    """An issued weight reduce-scatter plus the resize that must follow it; ``wait()`` returns ``shard_buf``.

    Args:
        async_work: the collective's work handle (None: already complete), or a pending collective of ours.
        async_event: a CUDA event the current stream waits on first (None on CPU).
        shard_buf: the tensor that holds this rank's shard once the work is done.
        resize_callback: run once after the wait (frees the full buffer).
    """

    def __init__(
        self,
        async_work: Optional[dist.Work],
        async_event: Optional[Any],
        shard_buf: torch.Tensor,
        resize_callback: Callable[[], None],
    ) -> None:
        super().__init__()
        self._async_work = async_work
        self._async_event = async_event
        self._shard_buf = shard_buf
        self._resize_callback = resize_callback
        self._completed = False

    def _wait_impl(self) -> torch.Tensor:
        if self._completed:
            return self._shard_buf
        if self._async_event is not None:
            torch.cuda.current_stream().wait_event(self._async_event)
        if isinstance(self._async_work, Pending):
            self._shard_buf.copy_(self._async_work.wait())
        elif self._async_work is not None:
            self._async_work.wait()
        self._resize_callback()
        self._completed = True
        return self._shard_buf


def _replica_group(env: Optional[ShardingEnv], cls_name: str) -> ProcessGroup:
    """The replica process group of a 2-D environment (``ShardingEnv2D.replica_pg``)."""
    pg = getattr(env, "replica_pg", None) if env is not None else None
    if pg is None:
        raise ValueError(f"{cls_name} needs env=ShardingEnv2D (an environment with a replica_pg), got {env!r}")
    return pg


class _FlatWeightSharder:
    """Reduce-scatter / all-gather of one kernel's flat weight buffer over the replica group (see module doc)."""

    def __init__(self, flat: torch.Tensor, group: ProcessGroup) -> None:
        self.flat = flat
        self.group = group
        self.world = dist.get_world_size(group)
        self.numel = flat.numel()
        self.shard_numel = -(-self.numel // self.world)
        self.nbytes = self.numel * flat.element_size()
        self.shard_buf: Optional[torch.Tensor] = None
        self.sharded = False

    def reduce_scatter_async(self) -> ReduceScatterResizeAwaitable:
        padded = torch.zeros(self.world * self.shard_numel, dtype=self.flat.dtype, device=self.flat.device)
        padded[: self.numel] = self.flat.detach() / self.world
        pending = reduce_scatter_v(padded, [self.shard_numel] * self.world, self.group)
        shard = torch.empty(self.shard_numel, dtype=self.flat.dtype, device=self.flat.device)
        self.shard_buf = shard

        def free_full_buffer() -> None:
            self.flat.untyped_storage().resize_(0)
            self.sharded = True

        return ReduceScatterResizeAwaitable(pending, None, shard, free_full_buffer)  # type: ignore[arg-type]

    def all_gather(self) -> None:
        assert self.shard_buf is not None
        gathered = all_gather_v(self.shard_buf, [self.shard_numel] * self.world, self.group).wait()
        self.flat.untyped_storage().resize_(self.nbytes)
        # ``.data``: the forward saved ``flat`` for backward; refilling its storage must not bump its version.
        self.flat.data.copy_(gathered[: self.numel])
        self.shard_buf = None
        self.sharded = False


class _FullyShardedMethods:
    """What both fully sharded kernels add (mix-in over ``self._weight_sharder``)."""

    _weight_sharder: _FlatWeightSharder
    _rs_awaitable: Optional[ReduceScatterResizeAwaitable]

    @property
    def weights_sharded(self) -> bool:
        return self._weight_sharder.sharded

    def _setup_full_sharding(self, env: Optional[ShardingEnv]) -> None:
        group = _replica_group(env, type(self).__name__)
        self._env = env
        self._weight_sharder = _FlatWeightSharder(fused_flat_weights(self._emb_module), group)  # type: ignore[attr-defined]
        self._rs_awaitable = None
        self.register_full_backward_pre_hook(self._hybird_sharded_backward_hook)  # type: ignore[attr-defined]

    def _all_gather_table_weights(self) -> None:
        """Restores the full (replica-averaged) weights from the shards; a no-op when they are full."""
        self.ensure_reduce_scatter_complete()
        if self._weight_sharder.sharded:
            self._weight_sharder.all_gather()

    def _hybird_sharded_backward_hook(self, module: nn.Module, grad_input: List[torch.Tensor]) -> None:
        self._all_gather_table_weights()

    def get_rs_awaitable(self) -> Optional[ReduceScatterResizeAwaitable]:
        """The pending weight reduce-scatter of the last training forward, if any."""
        return self._rs_awaitable

    def ensure_reduce_scatter_complete(self) -> None:
        """Waits for the pending reduce-scatter (and frees the full buffer); a no-op when none is pending."""
        if self._rs_awaitable is not None:
            self._rs_awaitable.wait()
            self._rs_awaitable = None

    def _reduce_scatter_weights_async(self) -> ReduceScatterResizeAwaitable:
        self._rs_awaitable = self._weight_sharder.reduce_scatter_async()
        return self._rs_awaitable

    def _sharded_forward(self, embs: torch.Tensor) -> torch.Tensor:
        if self.training:  # type: ignore[attr-defined]
            self._reduce_scatter_weights_async()
        return embs


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ShardedBatchedFusedEmbeddingBag(_FullyShardedMethods, BatchedFusedEmbeddingBag):
    """Pooled fused kernel whose weights are sharded over ``env.replica_pg`` between forward and backward.

    Args:
        config / pg / device / sharding_type: as :class:`BatchedFusedEmbeddingBag`.
        env: a ``ShardingEnv2D`` (required): its ``replica_pg`` holds the copies to average.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
        env: Optional[ShardingEnv] = None,
    ) -> None:
        _replica_group(env, type(self).__name__)
        super().__init__(config, pg, device, sharding_type, env)
        # The CPU fast path keeps its own views of the flat buffer; the sharded kernel stays on FBGEMM's.
        self._cpu_fast = None
        self._setup_full_sharding(env)

    def forward(self, features: Any) -> torch.Tensor:  # type: ignore[override]
        self._all_gather_table_weights()
        return self._sharded_forward(super().forward(features))


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ShardedBatchedFusedEmbedding(_FullyShardedMethods, BatchedFusedEmbedding):
    """Sequence fused kernel whose weights are sharded over ``env.replica_pg`` between forward and backward.

    Args:
        config / pg / device: as :class:`BatchedFusedEmbedding`.
        env: a ``ShardingEnv2D`` (required): its ``replica_pg`` holds the copies to average.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        env: Optional[ShardingEnv] = None,
    ) -> None:
        _replica_group(env, type(self).__name__)
        super().__init__(config, pg, device)
        self._setup_full_sharding(env)

    def forward(self, features: Any) -> torch.Tensor:  # type: ignore[override]
        self._all_gather_table_weights()
        return self._sharded_forward(super().forward(features))
