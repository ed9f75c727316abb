"""Sharded ``KeyedJaggedTensorPool`` and its sharder (``torchrec.distributed.keyed_jagged_tensor_pool``): row-wise,
or row-wise within each host and replicated across hosts.

Every rank calls ``update`` / ``lookup`` together; results equal an unsharded ``KeyedJaggedTensorPool`` that
applied the updates in rank order. Slots travel slot-major (``_pool/jagged.py``). State dict: ``values``,
``key_lengths`` (and ``weights``) as ``ShardedTensor`` s of row blocks.
"""

from typing import Any, Dict, List, Optional, Type, Union

import torch

from recsys_lib.distributed._core.awaitable import Awaitable, LazyAwaitable
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._pool.jagged import select_slots, slot_major_to_kjt
from recsys_lib.distributed._pool.rows import check_slot_ids
from recsys_lib.distributed._pool.state import load_local_states
from recsys_lib.distributed._pool.plan import ObjectPoolShardingPlan, ObjectPoolShardingType
from recsys_lib.distributed.object_pool import ShardedObjectPool
from recsys_lib.distributed.sharding.rw_kjt_pool_sharding import (
    KeyedJaggedTensorPoolRwReplicatedSharding,
    KeyedJaggedTensorPoolRwSharding,
)
from recsys_lib.distributed.tensor_sharding import ObjectPoolShardingContext
from recsys_lib.modules.keyed_jagged_tensor_pool import check_bag_lengths, KeyedJaggedTensorPool, pool_feature_order
from recsys_lib.modules._uvm_pool_lookups import UVMCachingInt32Lookup, UVMCachingInt64Lookup
from recsys_lib.modules.object_pool_lookups import KeyedJaggedTensorPoolLookup, TensorJaggedIndexSelectLookup
from recsys_lib.modules.utils import deterministic_dedup
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


class KeyedJaggedTensorPoolAwaitable(LazyAwaitable[KeyedJaggedTensor]):
    """Slots received back from the owners → a KJT in the order of the ids asked.

    Args:
        awaitable: the slot-major ``JaggedTensor`` in bucketized order.
        keys: the pool's features.
        device: result device.
        unbucketize_permute: ``(N,)`` position of each asked id in bucketized order.
    """

    def __init__(self, awaitable: Awaitable[JaggedTensor], keys: List[str], device: torch.device,
                 unbucketize_permute: torch.Tensor) -> None:
        super().__init__()
        self._awaitable = awaitable
        self._keys = keys
        self._device = device
        self._unbucketize_permute = unbucketize_permute

    def _wait_impl(self) -> KeyedJaggedTensor:
        jt = self._awaitable.wait()
        return slot_major_to_kjt(select_slots(jt, len(self._keys), self._unbucketize_permute), self._keys)


def _pool_sharding(env: ShardingEnv, plan: ObjectPoolShardingPlan, device: torch.device, pool_size: int,
                   num_features: int) -> Union[KeyedJaggedTensorPoolRwSharding, KeyedJaggedTensorPoolRwReplicatedSharding]:
    """The training sharding the plan names (``ROW_WISE`` or ``REPLICATED_ROW_WISE``)."""
    if not plan.inference and plan.sharding_type == ObjectPoolShardingType.ROW_WISE:
        return KeyedJaggedTensorPoolRwSharding(env, device, pool_size, num_features)
    if not plan.inference and plan.sharding_type == ObjectPoolShardingType.REPLICATED_ROW_WISE:
        return KeyedJaggedTensorPoolRwReplicatedSharding(env, device, pool_size, num_features)
    raise ValueError(f"ShardedKeyedJaggedTensorPool: training pools are ROW_WISE or REPLICATED_ROW_WISE, got "
                     f"{plan.sharding_type} (inference={plan.inference})")


def _local_lookup(rows: int, values_dtype: torch.dtype, feature_max_lengths: Dict[str, int], is_weighted: bool,
                  device: torch.device, enable_uvm: bool) -> KeyedJaggedTensorPoolLookup:
    """This rank's slot storage: padded device tensors, or (``enable_uvm``) FBGEMM's UVM-caching TBE."""
    if not enable_uvm:
        return TensorJaggedIndexSelectLookup(rows, values_dtype, feature_max_lengths, is_weighted, device)
    if values_dtype == torch.int64:
        return UVMCachingInt64Lookup(rows, feature_max_lengths, is_weighted, device)
    if values_dtype == torch.int32:
        return UVMCachingInt32Lookup(rows, feature_max_lengths, is_weighted, device)
    raise ValueError(f"ShardedKeyedJaggedTensorPool: enable_uvm stores int32 or int64 values, got {values_dtype}")


class ShardedKeyedJaggedTensorPool(ShardedObjectPool[KeyedJaggedTensor, JaggedTensor, ObjectPoolShardingContext]):
    """A ``KeyedJaggedTensorPool`` sharded row-wise (``ROW_WISE``), or row-wise over each host's ranks and copied
    on every host (``REPLICATED_ROW_WISE``: updates reach every copy, lookups stay on the host).

    Args:
        pool_size: slots ``P``.
        feature_max_lengths: ``{feature: max ids per slot}`` (pool feature order).
        values_dtype: dtype of the stored values.
        is_weighted: also store weights.
        sharding_env: world, rank, process group.
        sharding_plan: ``ObjectPoolShardingPlan(ROW_WISE)`` or ``(REPLICATED_ROW_WISE)``.
        device: where the local slots live (default ``meta``).
        enable_uvm: keep this rank's slots in FBGEMM's UVM-caching TBE (CUDA only; int32 / int64 values).
    """

    def __init__(
        self,
        pool_size: int,
        feature_max_lengths: Dict[str, int],
        values_dtype: torch.dtype,
        is_weighted: bool,
        sharding_env: ShardingEnv,
        sharding_plan: ObjectPoolShardingPlan,
        device: Optional[torch.device] = None,
        enable_uvm: bool = False,
    ) -> None:
        super().__init__()
        self._pool_size = pool_size
        self._feature_max_lengths = feature_max_lengths
        self._values_dtype = values_dtype
        self._is_weighted = is_weighted
        self._sharding_env = sharding_env
        self._sharding_plan = sharding_plan
        self._device = device if device is not None else torch.device("meta")
        self._enable_uvm = enable_uvm
        self._keys: List[str] = list(feature_max_lengths)
        self._sharding = _pool_sharding(sharding_env, sharding_plan, self._device, pool_size, len(self._keys))
        self._lookup: KeyedJaggedTensorPoolLookup = _local_lookup(
            self._sharding.local_pool_size, values_dtype, feature_max_lengths, is_weighted, self._device, enable_uvm
        )
        self._lookup_ids_dist_impl = self._sharding.create_lookup_ids_dist()
        self._lookup_values_dist_impl = self._sharding.create_lookup_values_dist()
        self._update_ids_dist_impl = self._sharding.create_update_ids_dist()
        self._update_values_dist_impl = self._sharding.create_update_values_dist()
        self._initialize_torch_state()

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def feature_max_lengths(self) -> Dict[str, int]:
        return self._feature_max_lengths

    @property
    def values_dtype(self) -> torch.dtype:
        return self._values_dtype

    @property
    def is_weighted(self) -> bool:
        return self._is_weighted

    @property
    def device(self) -> torch.device:
        return self._device

    def _initialize_torch_state(self) -> None:
        for fqn, tensor in self._sharding.get_sharded_states_to_register(self._lookup):
            self.register_buffer(fqn, tensor)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, local_metadata: Any, strict: bool,
                              missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str]) -> None:
        load_local_states(self._lookup.states_to_register(), state_dict, prefix, strict, missing_keys)

    def _check_ids(self, what: str, ids: torch.Tensor) -> None:
        check_slot_ids(f"{type(self).__name__}.{what}", ids, self._pool_size)

    def _update_preproc(self, values: KeyedJaggedTensor) -> KeyedJaggedTensor:
        owner = "ShardedKeyedJaggedTensorPool.update"
        kjt = check_bag_lengths(owner, values.permute(pool_feature_order(owner, values, self._keys)),
                                self._feature_max_lengths)
        if kjt.values().dtype != self._values_dtype:
            raise TypeError(f"ShardedKeyedJaggedTensorPool.update: values dtype {kjt.values().dtype}, pool "
                            f"{self._values_dtype}")
        return kjt

    def update(self, ids: torch.Tensor, values: KeyedJaggedTensor) -> None:  # type: ignore[override]
        if values.stride() != ids.numel():
            raise ValueError(f"ShardedKeyedJaggedTensorPool.update: {ids.numel()} ids for a KJT of stride "
                             f"{values.stride()}")
        super().update(ids, values)

    def _update_ids_dist(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        self._check_ids("update", ids)
        return self._update_ids_dist_impl(ctx=ctx, ids=ids)

    def _update_values_dist(self, ctx: ObjectPoolShardingContext, values: KeyedJaggedTensor) -> Awaitable[JaggedTensor]:
        return self._update_values_dist_impl(values, ctx)

    def _update_local(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor, values: JaggedTensor) -> None:
        unique, last = deterministic_dedup(ids)
        self._lookup.update(unique, select_slots(values, len(self._keys), last))

    def _lookup_ids_dist(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> Awaitable[Awaitable[torch.Tensor]]:
        self._check_ids("lookup", ids)
        return self._lookup_ids_dist_impl(ctx=ctx, ids=ids)

    def _lookup_local(self, ctx: ObjectPoolShardingContext, ids: torch.Tensor) -> JaggedTensor:
        return self._lookup.lookup(ids)

    def _lookup_values_dist(self, ctx: ObjectPoolShardingContext, values: JaggedTensor) -> LazyAwaitable[KeyedJaggedTensor]:
        assert ctx.unbucketize_permute is not None
        return KeyedJaggedTensorPoolAwaitable(self._lookup_values_dist_impl(ctx, values), self._keys, self._device,
                                              ctx.unbucketize_permute)

    def create_context(self) -> ObjectPoolShardingContext:
        return self._sharding.create_context()


class KeyedJaggedTensorPoolSharder(ModuleSharder[KeyedJaggedTensorPool]):
    """Shards ``KeyedJaggedTensorPool`` s row-wise (or replicated row-wise, as the plan says)."""

    def __init__(self) -> None:
        super().__init__()

    def shard(  # type: ignore[override]
        self,
        module: KeyedJaggedTensorPool,
        plan: ObjectPoolShardingPlan,
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedKeyedJaggedTensorPool:
        if plan.inference:
            return ShardedInferenceKeyedJaggedTensorPool(  # type: ignore[return-value]
                pool_size=module.pool_size, feature_max_lengths=module.feature_max_lengths,
                values_dtype=module.values_dtype, is_weighted=module.is_weighted, sharding_env=env,
                sharding_plan=plan, module=module, device=device,
            )
        return ShardedKeyedJaggedTensorPool(module.pool_size, module.feature_max_lengths, module.values_dtype,
                                            module.is_weighted, env, plan, device, module._enable_uvm)

    @property
    def module_type(self) -> Type[KeyedJaggedTensorPool]:
        return KeyedJaggedTensorPool


from recsys_lib.distributed._pool.infer_kjt import (  # noqa: E402,F401  (TorchRec defines it in this module)
    ShardedInferenceKeyedJaggedTensorPool,
)
