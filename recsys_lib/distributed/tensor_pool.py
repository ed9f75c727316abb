"""Sharded ``TensorPool`` and its sharder (``torchrec.distributed.tensor_pool``), row-wise.

Every rank calls ``update`` / ``lookup`` together, each with its own ids; the result equals an unsharded
``TensorPool`` that applied the updates in rank order::

    pool = TensorPoolSharder().shard(TensorPool(pool_size=10, dim=2, dtype=torch.float),
                                     ObjectPoolShardingPlan(ObjectPoolShardingType.ROW_WISE), env, cpu)
    pool.update(ids, rows)          # ids (N,), rows (N, 2)
    pool.lookup(ids).wait()         # (N, 2)

State dict: ``_pool`` is a ``ShardedTensor`` ``(P, D)`` of row blocks.
"""

from typing import Any, Dict, List, Optional, Type

import torch

from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._pool.rows import check_slot_ids
from recsys_lib.distributed._pool.state import load_local_states
from recsys_lib.distributed._pool.plan import ObjectPoolShardingPlan, ObjectPoolShardingType
from recsys_lib.distributed.object_pool import ShardedObjectPool
from recsys_lib.distributed.sharding.rw_pool_sharding import RwObjectPoolIDsDist
from recsys_lib.distributed.sharding.rw_tensor_pool_sharding import RwTensorPoolValuesDist, TensorPoolRwSharding
from recsys_lib.distributed.tensor_sharding import ObjectPoolShardingContext
from recsys_lib.modules.object_pool_lookups import TensorLookup, TensorPoolLookup
from recsys_lib.modules.tensor_pool import TensorPool
from recsys_lib.modules.utils import deterministic_dedup


class TensorPoolAwaitable(LazyAwaitable[torch.Tensor]):
    """Rows received back from the owners, put into the order of the ids asked (``unbucketize_permute``)."""

    def __init__(self, awaitable: Awaitable[torch.Tensor], unbucketize_permute: torch.Tensor) -> None:
        super().__init__()
        self._awaitable = awaitable
        self._unbucketize_permute = unbucketize_permute

    def _wait_impl(self) -> torch.Tensor:
        return self._awaitable.wait().index_select(0, self._unbucketize_permute)


def check_row_wise(owner: str, plan: ObjectPoolShardingPlan) -> None:
    if plan.sharding_type != ObjectPoolShardingType.ROW_WISE or plan.inference:
        raise ValueError(f"{owner}: only ObjectPoolShardingType.ROW_WISE training pools are provided, got "
                         f"{plan.sharding_type} (inference={plan.inference})")


class ShardedTensorPool(ShardedObjectPool[torch.Tensor, torch.Tensor, ObjectPoolShardingContext]):
    """A ``TensorPool`` of ``pool_size`` rows of width ``dim`` sharded row-wise.

    Args:
        env: world, rank, process group.
        pool_size: ``P``.
        dim: ``D``.
        dtype: row dtype.
        sharding_plan: ``ObjectPoolShardingPlan(ROW_WISE)``.
        device: where the local rows live (default ``meta``, as TorchRec).
        enable_uvm: accepted; rows are a plain device tensor.
    """

    def __init__(
        self,
        env: ShardingEnv,
        pool_size: int,
        dim: int,
        dtype: torch.dtype,
        sharding_plan: ObjectPoolShardingPlan,
        device: Optional[torch.device] = None,
        enable_uvm: bool = False,
    ) -> None:
        super().__init__()
        check_row_wise("ShardedTensorPool", sharding_plan)
        self._world_size = env.world_size
        self._rank = env.rank
        self._pool_size = pool_size
        self._sharding_env = env
        self._dim = dim
        self._device = device if device is not None else torch.device("meta")
        self._dtype = dtype
        self._sharding_plan = sharding_plan
        self._enable_uvm = enable_uvm
        self._sharding = TensorPoolRwSharding(env=env, device=self._device, pool_size=pool_size, dim=dim)
        self._lookup: TensorPoolLookup = TensorLookup(self._sharding.local_pool_size, dim, dtype, self._device,
                                                      enable_uvm)
        self._lookup_ids_dist_impl: RwObjectPoolIDsDist = self._sharding.create_lookup_ids_dist()
        self._lookup_values_dist_impl: RwTensorPoolValuesDist = self._sharding.create_lookup_values_dist()
        self._update_ids_dist_impl: RwObjectPoolIDsDist = self._sharding.create_update_ids_dist()
        self._update_values_dist_impl: RwTensorPoolValuesDist = self._sharding.create_update_values_dist()
        self._initialize_torch_state()

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

    def _update_preproc(self, values: torch.Tensor) -> torch.Tensor:
        if values.dtype != self._dtype or values.dim() != 2 or values.size(1) != self._dim:
            raise ValueError(f"ShardedTensorPool.update: values must be (N, {self._dim}) of {self._dtype}, got "
                             f"{tuple(values.shape)} of {values.dtype}")
        if values.device.type != self._device.type:
            raise ValueError(f"ShardedTensorPool.update: values on {values.device}, the pool on {self._device}")
        return values

    def _update_ids_dist(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        self._check_ids("update", ids)
        return self._update_ids_dist_impl(ctx=ctx, ids=ids)

    def _update_values_dist(self, ctx: ObjectPoolShardingContext, values: torch.Tensor) -> LazyAwaitable[torch.Tensor]:
        return self._update_values_dist_impl(ctx=ctx, values=values)

    def _update_local(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor, values: torch.Tensor) -> None:
        unique, last = deterministic_dedup(ids)
        self._lookup.update(unique, values[last])

    def _lookup_ids_dist(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        self._check_ids("lookup", ids)
        return self._lookup_ids_dist_impl(ctx=ctx, ids=ids)

    def _lookup_local(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> torch.Tensor:
        return self._lookup.lookup(ids)

    def _lookup_values_dist(self, ctx: ObjectPoolShardingContext, values: torch.Tensor) -> LazyAwaitable[torch.Tensor]:
        assert ctx.unbucketize_permute is not None
        return TensorPoolAwaitable(self._lookup_values_dist_impl(ctx, values), ctx.unbucketize_permute)

    def create_context(self) -> ObjectPoolShardingContext:
        return self._sharding.create_context()

    def _check_ids(self, what: str, ids: torch.Tensor) -> None:
        check_slot_ids(f"{type(self).__name__}.{what}", ids, self._pool_size)

    def _initialize_torch_state(self) -> None:
        self._state_names: List[str] = []
        for fqn, tensor in self._sharding.get_sharded_states_to_register(self._lookup):
            self.register_buffer(fqn, tensor)
            self._state_names.append(fqn)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str]) -> None:
        load_local_states(self._lookup.states_to_register(), state_dict, prefix, strict, missing_keys)


class TensorPoolSharder(ModuleSharder[TensorPool]):
    """Shards ``TensorPool`` s row-wise."""

    def __init__(self) -> None:
        super().__init__()

    def shard(  # type: ignore[override]
        self,
        module: TensorPool,
        plan: ObjectPoolShardingPlan,
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedTensorPool:
        if plan.inference:
            return ShardedInferenceTensorPool(env=env, pool_size=module.pool_size, dim=module.dim,  # type: ignore[return-value]  # noqa: E501
                                              dtype=module.dtype, plan=plan, module=module, device=device)
        return ShardedTensorPool(env=env, pool_size=module.pool_size, dim=module.dim, dtype=module.dtype,
                                 sharding_plan=plan, device=device, enable_uvm=module._enable_uvm)

    @property
    def module_type(self) -> Type[TensorPool]:
        return TensorPool


from recsys_lib.distributed._pool.infer import (  # noqa: E402,F401  (TorchRec defines them in this module)
    index_select_view,
    LocalShardPool,
    ShardedInferenceTensorPool,
    update,
)
