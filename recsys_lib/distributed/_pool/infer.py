"""Inference tensor pools: one process holds every rank's shard (``torchrec.distributed.tensor_pool``'s
``ShardedInferenceTensorPool`` and its row-wise inference sharding).

Rows are split as for training (``rows.py``: blocks of ``ceil(P / W)``), or by ``memory_capacity_per_rank``
(rank ``r`` gets ``floor(cap_r / sum(cap) * P)`` rows, the last rank the rest)::

    P = 10, W = 2, caps [1, 3]:  rank 0 rows [0, 2)   rank 1 rows [2, 10)

A lookup bucketizes ids by owner (stable), looks each rank's local rows up in its ``LocalShardPool``, concatenates
the results on the output device and puts them back in input order (``index_select_view``). An update writes each
rank's rows; of repeated ids the last value wins.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.plan import ObjectPoolShardingPlan, ObjectPoolShardingType
from recsys_lib.distributed._pool.rows import check_slot_ids, local_pool_size
from recsys_lib.distributed.object_pool import ShardedObjectPool
from recsys_lib.distributed.tensor_sharding import InferObjectPoolSharding, ObjectPoolShardingContext
from recsys_lib.modules.object_pool import ObjectPool


@public_at("recsys_lib.distributed.tensor_pool")
def index_select_view(output: torch.Tensor, unbucketize_permute: Optional[torch.Tensor], dim: int) -> torch.Tensor:
    """Rows of ``output`` in input order: ``output[unbucketize_permute]`` viewed ``(-1, dim)``."""
    assert unbucketize_permute is not None
    return output[unbucketize_permute].view(-1, dim)


@public_at("recsys_lib.distributed.tensor_pool")
def update(shard: torch.nn.Parameter, rank_ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Writes ``values`` at local rows ``rank_ids`` of ``shard`` (moved to its device); returns an empty tensor."""
    if values.device != shard.device:
        values = values.to(shard.device)
    with torch.no_grad():
        shard[rank_ids] = values.to(shard.dtype)
    return torch.empty(0)


@public_at("recsys_lib.distributed.sharding.rw_pool_sharding")
class InferRwObjectPoolInputDist(nn.Module):
    """Bucketizes ids by owning rank for an inference pool.

    Args:
        env: ``world_size`` "ranks".
        device: device of the per-rank id lists.
        block_size: ``(1,)`` rows per rank (even split).
        block_bucketize_row_pos: ``[(W + 1,) row offsets]`` for an uneven split.
    """

    def __init__(self, env: ShardingEnv, device: torch.device, block_size: torch.Tensor,
                 block_bucketize_row_pos: Optional[List[torch.Tensor]] = None) -> None:
        super().__init__()
        self._world_size = env.world_size
        self._device = device
        self._block_size = block_size
        self._block_bucketize_row_pos: List[torch.Tensor] = list(block_bucketize_row_pos or [])

    def _owners(self, ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(owner (N,), first row of the owner (N,))``."""
        ids = ids.to(torch.int64)
        if self._block_bucketize_row_pos:
            offsets = self._block_bucketize_row_pos[0].to(ids.device, torch.int64)
            owner = (torch.searchsorted(offsets, ids, right=True) - 1).clamp_(0, self._world_size - 1)
            return owner, offsets[owner]
        block = int(self._block_size.reshape(-1)[0])
        owner = torch.div(ids, block, rounding_mode="floor").clamp_(0, self._world_size - 1)
        return owner, owner * block

    def forward(self, ids: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(local ids per rank, unbucketize_permute (N,), owner of each id (N,), ids per rank (W,))``."""
        owner, first = self._owners(ids)
        order = torch.argsort(owner, stable=True)
        local = (ids.to(torch.int64) - first)[order]
        counts = torch.bincount(owner, minlength=self._world_size)
        unbucketize = torch.empty_like(order)
        unbucketize[order] = torch.arange(order.numel(), device=order.device)
        per_rank = list(local.split(counts.tolist()))
        return [p.to(self._device) for p in per_rank], unbucketize, owner, counts

    def update(self, ids: torch.Tensor, values: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor], torch.Tensor]:  # noqa: E501
        """``(local ids per rank, their values per rank, unbucketize_permute)``."""
        per_rank, unbucketize, owner, counts = self.forward(ids)
        order = torch.argsort(owner, stable=True)
        return per_rank, list(values[order].split(counts.tolist())), unbucketize


@public_at("recsys_lib.distributed.sharding.rw_tensor_pool_sharding")
class InferRwTensorPoolOutputDist(nn.Module):
    """Concatenates every rank's looked-up rows on one device.

    Args:
        env: ``world_size`` "ranks".
        device: the output device.
    """

    def __init__(self, env: ShardingEnv, device: torch.device) -> None:
        super().__init__()
        self._device: Optional[torch.device] = device
        self._world_size: int = env.world_size
        self._cat_dim = 0
        self._placeholder: torch.Tensor = torch.ones(1, device=device)

    @torch.jit.export
    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)
        self._placeholder = torch.ones(1, device=self._device)

    def forward(self, lookups: List[torch.Tensor]) -> torch.Tensor:
        """``(sum(N_r), D)`` on the output device."""
        if len(lookups) != self._world_size:
            raise ValueError(f"InferRwTensorPoolOutputDist: {len(lookups)} lookups for world size {self._world_size}")
        return torch.cat([t.to(self._placeholder.device) for t in lookups], dim=self._cat_dim)


@public_at("recsys_lib.distributed.sharding.rw_tensor_pool_sharding")
class InferRwTensorPoolSharding(InferObjectPoolSharding):
    """Row-wise inference sharding of a tensor pool (arguments as ``InferObjectPoolSharding``)."""

    def __init__(self, pool_size: int, env: ShardingEnv, device: torch.device,
                 memory_capacity_per_rank: Optional[List[int]] = None) -> None:
        super().__init__(pool_size, env, device, memory_capacity_per_rank)

    def create_lookup_ids_dist(self) -> InferRwObjectPoolInputDist:
        return InferRwObjectPoolInputDist(self._env, device=self._device, block_size=self._block_size_t,
                                          block_bucketize_row_pos=self._block_bucketize_row_pos)

    def create_lookup_values_dist(self) -> InferRwTensorPoolOutputDist:
        return InferRwTensorPoolOutputDist(env=self._env, device=self._device)


@public_at("recsys_lib.distributed.tensor_pool")
class LocalShardPool(nn.Module):
    """One rank's rows of an inference tensor pool, as a (no-grad) parameter.

    Args:
        shard: ``(rows, D)``.

    Example::

        pool = LocalShardPool(torch.tensor([[1, 2, 3], [4, 5, 6]]))
        pool(torch.tensor([1]))   # tensor([[4, 5, 6]])
    """

    def __init__(self, shard: torch.Tensor) -> None:
        super().__init__()
        self._shard: nn.Parameter = nn.Parameter(shard, requires_grad=False)
        self.current_device = self._shard.device

    @torch.jit.export
    def set_device(self, device_str: str) -> None:
        self.current_device = torch.device(device_str)

    def forward(self, rank_ids: torch.Tensor) -> torch.Tensor:
        """Rows ``rank_ids`` (local) of the shard."""
        return self._shard[rank_ids.to(self.current_device)]

    def update(self, rank_ids: torch.Tensor, values: torch.Tensor) -> None:
        update(self._shard, rank_ids, values)


def _last_occurrence(ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(distinct ids, index of each one's last occurrence)``: of repeated ids, the last value wins."""
    uniq, inverse = torch.unique(ids, return_inverse=True)
    last = torch.full((uniq.numel(),), -1, dtype=torch.int64, device=ids.device)
    last.scatter_reduce_(0, inverse, torch.arange(ids.numel(), device=ids.device), reduce="amax")
    return uniq, last


@public_at("recsys_lib.distributed.tensor_pool")
class ShardedInferenceTensorPool(ShardedObjectPool):
    """A ``TensorPool`` split row-wise over the devices of one process for inference (see the module docstring).

    Args:
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``).
        pool_size: rows ``P``.
        dim: row width ``D``.
        dtype: row dtype.
        plan: an ``ObjectPoolShardingPlan`` with ``inference=True`` (row-wise).
        module: the unsharded pool (its rows are copied unless on ``meta``).
        device: output device (default CUDA, as TorchRec; CPU keeps every shard on CPU).
    """

    def __init__(self, env: ShardingEnv, pool_size: int, dim: int, dtype: torch.dtype, plan: ObjectPoolShardingPlan,
                 module: ObjectPool, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if not plan.inference:
            raise ValueError("ShardedInferenceTensorPool: the plan needs inference=True")
        if plan.sharding_type != ObjectPoolShardingType.ROW_WISE:
            raise ValueError(f"ShardedInferenceTensorPool: only ROW_WISE is provided, got {plan.sharding_type}")
        self._pool_size = pool_size
        self._dtype = dtype
        self._sharding_env = env
        self._world_size = env.world_size
        self._rank = env.rank
        self._dim = dim
        self._device = device if device is not None else torch.device("cuda")
        self._sharding_plan = plan
        self._sharding = InferRwTensorPoolSharding(pool_size, env, self._device, plan.memory_capacity_per_rank)
        self._local_shard_pools = nn.ModuleList()
        offset = 0
        for rank, rows in enumerate(self._sharding.local_pool_size_per_rank):
            shard_device = torch.device("cpu") if self._device.type == "cpu" else torch.device("cuda", rank)
            shard = torch.empty((rows, dim), dtype=dtype, device=shard_device)
            if module._pool.device.type != "meta":
                shard.copy_(module._pool[offset:offset + rows])
            self._local_shard_pools.append(LocalShardPool(shard))
            offset += rows
        self._lookup_ids_dist_impl = self._sharding.create_lookup_ids_dist()
        self._lookup_values_dist_impl = self._sharding.create_lookup_values_dist()

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def create_context(self) -> ObjectPoolShardingContext:  # type: ignore[override]
        """An empty context (inference lookups run in ``forward`` without one)."""
        return ObjectPoolShardingContext()

    def _lookup_ids_dist(self, ids: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]  # noqa: E501
        return self._lookup_ids_dist_impl(ids)

    def _update_ids_dist(self, ids: torch.Tensor, values: torch.Tensor) -> Tuple[List[torch.Tensor], List[torch.Tensor], torch.Tensor]:  # type: ignore[override]  # noqa: E501
        return self._lookup_ids_dist_impl.update(ids, values)

    def _lookup_local(self, dist_input: List[torch.Tensor]) -> List[torch.Tensor]:  # type: ignore[override]
        return [shard(dist_input[i]) for i, shard in enumerate(self._local_shard_pools)]

    def _lookup_values_dist(self, lookups: List[torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        return self._lookup_values_dist_impl(lookups)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Rows ``(N, D)`` of ``ids`` in input order (``ValueError`` for ids outside ``[0, P)``)."""
        check_slot_ids(type(self).__name__, ids, self._pool_size)
        dist_input, unbucketize, _, _ = self._lookup_ids_dist(ids)
        output = self._lookup_values_dist(self._lookup_local(dist_input))
        return index_select_view(output, unbucketize.to(output.device), self._dim)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.forward(ids)

    def _update_values_dist(self, ctx: object, values: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """Values travel with their ids (``_update_ids_dist``); returned unchanged."""
        return values

    def _update_local(self, dist_input: List[torch.Tensor], dist_values: List[torch.Tensor]) -> None:  # type: ignore[override]  # noqa: E501
        for i, shard in enumerate(self._local_shard_pools):
            ids, last = _last_occurrence(dist_input[i])
            shard.update(ids, dist_values[i][last])

    def _update_preproc(self, values: torch.Tensor) -> torch.Tensor:
        return values

    def update(self, ids: torch.Tensor, values: torch.Tensor) -> None:  # type: ignore[override]
        """Writes ``values (N, D)`` at ``ids`` (last value of a repeated id wins)."""
        check_slot_ids(type(self).__name__, ids, self._pool_size)
        dist_input, dist_values, _ = self._update_ids_dist(ids, values)
        self._update_local(dist_input, dist_values)
