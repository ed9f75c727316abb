"""Inference KJT pools: one process holds every rank's slots (``torchrec.distributed.keyed_jagged_tensor_pool``'s
``ShardedInferenceKeyedJaggedTensorPool`` and its row-wise inference sharding).

Slots are split as for inference tensor pools (``infer.py``). A lookup bucketizes the ids by owner, each rank's
``TensorJaggedIndexSelectLookup`` returns its slots slot-major, the slots are concatenated on the output device,
put back in input order and turned feature-major::

    ids [7, 1]  (W = 2, P = 10: rank 0 slots 0-4, rank 1 slots 5-9)
    rank 0: slot 1 -> [a: x, y | b: z]      rank 1: local slot 2 -> [a: u | b: ]
    output KJT (stride 2):  a: [[u], [x, y]]   b: [[], [z]]

Updates (TorchRec's inference pool has none) write each rank's slots; of repeated ids the last value wins.
"""

from typing import Dict, List, Optional

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._pool.infer import InferRwObjectPoolInputDist
from recsys_lib.distributed._pool.jagged import kjt_to_slot_major, select_slots, slot_major_to_kjt
from recsys_lib.distributed._pool.plan import ObjectPoolShardingPlan, ObjectPoolShardingType
from recsys_lib.distributed._pool.rows import check_slot_ids
from recsys_lib.distributed.object_pool import ShardedObjectPool
from recsys_lib.distributed.tensor_sharding import InferObjectPoolSharding, ObjectPoolShardingContext
from recsys_lib.modules.keyed_jagged_tensor_pool import check_bag_lengths, pool_feature_order
from recsys_lib.modules.object_pool import ObjectPool
from recsys_lib.modules.object_pool_lookups import TensorJaggedIndexSelectLookup
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


@public_at("recsys_lib.distributed.sharding.rw_kjt_pool_sharding")
class InferRwKeyedJaggedTensorPoolOutputDist(nn.Module):
    """Concatenates every rank's slot-major ``JaggedTensor`` on one device.

    Args:
        env: ``world_size`` "ranks".
        device: the output device.
    """

    def __init__(self, env: ShardingEnv, device: torch.device) -> None:
        super().__init__()
        self._device: Optional[torch.device] = device
        self._world_size: int = env.world_size
        self._placeholder: torch.Tensor = torch.ones(1, device=device)

    @torch.jit.export
    def set_device(self, device_str: str) -> None:
        self._device = torch.device(device_str)
        self._placeholder = torch.ones(1, device=self._device)

    def forward(self, jagged_tensors: List[JaggedTensor]) -> JaggedTensor:
        if len(jagged_tensors) != self._world_size:
            raise ValueError(f"InferRwKeyedJaggedTensorPoolOutputDist: {len(jagged_tensors)} lookups for world size "
                             f"{self._world_size}")
        dev = self._placeholder.device
        weights = [jt.weights_or_none() for jt in jagged_tensors]
        return JaggedTensor(
            values=torch.cat([jt.values().to(dev) for jt in jagged_tensors]),
            lengths=torch.cat([jt.lengths().to(dev) for jt in jagged_tensors]),
            weights=None if any(w is None for w in weights) else torch.cat([w.to(dev) for w in weights]),  # type: ignore[union-attr]  # noqa: E501
        )


@public_at("recsys_lib.distributed.sharding.rw_kjt_pool_sharding")
class InferRwKeyedJaggedTensorPoolSharding(InferObjectPoolSharding):
    """Row-wise inference sharding of a KJT pool (even blocks of ``ceil(P / W)`` slots).

    Args:
        pool_size: slots.
        env: ``world_size`` "ranks".
        device: output device.
    """

    def __init__(self, pool_size: int, env: ShardingEnv, device: torch.device) -> None:
        super().__init__(pool_size, env, device)

    def create_lookup_ids_dist(self) -> InferRwObjectPoolInputDist:
        return InferRwObjectPoolInputDist(self._env, device=self._device, block_size=self._block_size_t)

    def create_lookup_values_dist(self) -> InferRwKeyedJaggedTensorPoolOutputDist:
        return InferRwKeyedJaggedTensorPoolOutputDist(env=self._env, device=self._device)


@public_at("recsys_lib.distributed.keyed_jagged_tensor_pool")
class ShardedInferenceKeyedJaggedTensorPool(ShardedObjectPool):
    """A ``KeyedJaggedTensorPool`` split row-wise over the devices of one process (see the module docstring).

    Args:
        pool_size: slots ``P``.
        feature_max_lengths: ``{feature: max ids per slot}``.
        values_dtype: dtype of the values.
        is_weighted: the pool keeps weights.
        sharding_env: ``world_size`` "ranks" (``ShardingEnv.from_local``).
        sharding_plan: row-wise with ``inference=True``.
        module: the unsharded pool (its slots are copied unless on ``meta``).
        device: output device (default CUDA, as TorchRec; CPU keeps every shard on CPU).
    """

    def __init__(self, pool_size: int, feature_max_lengths: Dict[str, int], values_dtype: torch.dtype,
                 is_weighted: bool, sharding_env: ShardingEnv, sharding_plan: ObjectPoolShardingPlan,
                 module: ObjectPool, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if not sharding_plan.inference or sharding_plan.sharding_type != ObjectPoolShardingType.ROW_WISE:
            raise ValueError(f"ShardedInferenceKeyedJaggedTensorPool: needs a ROW_WISE plan with inference=True, got "
                             f"{sharding_plan.sharding_type} (inference={sharding_plan.inference})")
        self._pool_size = pool_size
        self._values_dtype = values_dtype
        self._sharding_env = sharding_env
        self._world_size = sharding_env.world_size
        self._device: torch.device = device if device is not None else torch.device("cuda")
        self._sharding_plan = sharding_plan
        self._is_weighted = is_weighted
        self._feature_max_lengths = feature_max_lengths
        self._keys: List[str] = list(feature_max_lengths)
        self._sharding = InferRwKeyedJaggedTensorPoolSharding(pool_size, sharding_env, self._device)
        self._local_kjt_pool_shards = nn.ModuleList()
        offset = 0
        for rank, rows in enumerate(self._sharding.local_pool_size_per_rank):
            shard_device = torch.device("cpu") if self._device.type == "cpu" else torch.device("cuda", rank)
            shard = TensorJaggedIndexSelectLookup(rows, values_dtype, feature_max_lengths, is_weighted, shard_device)
            if module._device.type != "meta":
                shard._values.copy_(module.values[offset:offset + rows])
                shard._key_lengths.copy_(module.key_lengths[offset:offset + rows])
                if is_weighted:
                    shard._weights.copy_(module.weights[offset:offset + rows])
            self._local_kjt_pool_shards.append(shard)
            offset += rows
        self._lookup_ids_dist_impl = self._sharding.create_lookup_ids_dist()
        self._lookup_values_dist_impl = self._sharding.create_lookup_values_dist()

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def dim(self) -> int:
        """Width of a stored slot: ``sum(feature_max_lengths)`` (TorchRec's attribute is never set)."""
        return sum(self._feature_max_lengths.values())

    @property
    def dtype(self) -> torch.dtype:
        return self._values_dtype

    @property
    def device(self) -> torch.device:
        return self._device

    def create_context(self) -> ObjectPoolShardingContext:  # type: ignore[override]
        """An empty context (inference lookups run in ``forward`` without one)."""
        return ObjectPoolShardingContext()

    def _lookup_ids_dist(self, ids: torch.Tensor):  # type: ignore[no-untyped-def, override]
        return self._lookup_ids_dist_impl(ids)

    def _lookup_local(self, dist_input: List[torch.Tensor]) -> List[JaggedTensor]:  # type: ignore[override]
        return [shard(dist_input[i]) for i, shard in enumerate(self._local_kjt_pool_shards)]

    def _lookup_values_dist(self, lookups: List[JaggedTensor]) -> JaggedTensor:  # type: ignore[override]
        return self._lookup_values_dist_impl(lookups)

    def forward(self, ids: torch.Tensor) -> KeyedJaggedTensor:  # type: ignore[override]
        """Feature-major KJT (stride ``N``) of the slots ``ids``, in input order."""
        check_slot_ids(type(self).__name__, ids, self._pool_size)
        dist_input, unbucketize, _, _ = self._lookup_ids_dist(ids)
        jt = self._lookup_values_dist(self._lookup_local(dist_input))
        ordered = select_slots(jt, len(self._keys), unbucketize.to(jt.values().device))
        return slot_major_to_kjt(ordered, self._keys)

    def lookup(self, ids: torch.Tensor) -> KeyedJaggedTensor:  # type: ignore[override]
        return self.forward(ids)

    def _update_preproc(self, values: KeyedJaggedTensor) -> KeyedJaggedTensor:
        values = values.permute(pool_feature_order(type(self).__name__, values, self._keys))
        return check_bag_lengths(type(self).__name__, values, self._feature_max_lengths)

    def _update_ids_dist(self, ctx: object, ids: torch.Tensor):  # type: ignore[no-untyped-def, override]
        return self._lookup_ids_dist_impl(ids)

    def _update_values_dist(self, ctx: object, values: JaggedTensor) -> JaggedTensor:  # type: ignore[override]
        return values

    def _update_local(self, ctx: object, ids: torch.Tensor, values: JaggedTensor) -> None:  # type: ignore[override]
        raise ValueError("ShardedInferenceKeyedJaggedTensorPool updates through update(ids, values)")

    def update(self, ids: torch.Tensor, values: KeyedJaggedTensor) -> None:  # type: ignore[override]
        """Writes the samples of ``values`` (stride ``N``) at slots ``ids`` (last value of a repeated id wins)."""
        check_slot_ids(type(self).__name__, ids, self._pool_size)
        slots = kjt_to_slot_major(self._update_preproc(values))
        per_rank, _, owner, counts = self._lookup_ids_dist_impl(ids)
        order = torch.argsort(owner, stable=True)
        start = 0
        for rank, shard in enumerate(self._local_kjt_pool_shards):
            n = int(counts[rank])
            local, mine = per_rank[rank], order[start:start + n]
            start += n
            if n == 0:
                continue
            uniq, inverse = torch.unique(local, return_inverse=True)
            last = torch.full((uniq.numel(),), -1, dtype=torch.int64).scatter_reduce_(
                0, inverse, torch.arange(n), reduce="amax")
            shard.update(uniq, select_slots(slots, len(self._keys), mine[last]))
