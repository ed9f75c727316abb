"""Sharded quantized MC-EC / MC-EBC for inference (TorchRec's ``quant_embedding`` / ``quant_embeddingbag`` names).

A quantized MC collection sharded row-wise over the devices of one process is two sharded parts with one plan::

    forward(KJT of raw ids)
      -> ShardedQuantManagedCollisionCollection   raw ids -> global rows (each id remapped by the rank owning its
                                                  raw-id block, read-only)
      -> ShardedQuantEmbedding(Bag)Collection     the rows looked up row-wise, assembled as the unsharded output
      =  (embeddings, remapped KJT if return_remapped_features else None)

``ShardedMCECLookup`` / ``ShardedMCEBCLookup`` are one rank's remap + lookup as a single module (TorchRec's unit
of per-rank inference work). The quantized EC/EBC classes are imported where used: their modules re-export this
one's names.
"""

from typing import Any, Dict, List, Optional, Tuple, Type, Union

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.env import NullShardedModuleContext
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._core.sharder import ShardedModule
from recsys_lib.distributed._mc.remapper import ShardedMCCRemapper
from recsys_lib.distributed._sharded.module_bases import BaseQuantEmbeddingSharder
from recsys_lib.distributed.embedding import EmbeddingCollectionContext
from recsys_lib.distributed.mc_modules import InferManagedCollisionCollectionSharder
from recsys_lib.quant.mc_embedding_modules import (
    QuantManagedCollisionEmbeddingBagCollection,
    QuantManagedCollisionEmbeddingCollection,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def _with_offsets(kjt: KeyedJaggedTensor, feature_to_offset: Dict[str, int]) -> KeyedJaggedTensor:
    """``kjt`` with each feature's values shifted by its table's first row on this rank (local -> global rows)."""
    parts = [v + feature_to_offset[k] for k, v in zip(kjt.keys(), kjt.values().split(kjt.length_per_key()))]
    values = torch.cat(parts) if parts else kjt.values()
    return KeyedJaggedTensor(keys=kjt.keys(), values=values, lengths=kjt.lengths(), weights=kjt.weights_or_none())


@public_at("recsys_lib.distributed.quant_embedding")
class ManagedCollisionEmbeddingCollectionContext(EmbeddingCollectionContext):
    """Per-batch state of a sharded quantized MC-EC: the EC context plus evictions (none in inference) and the
    remapped KJT."""

    def __init__(
        self,
        sharding_contexts: Optional[List[Any]] = None,
        input_features: Optional[List[KeyedJaggedTensor]] = None,
        reverse_indices: Optional[List[torch.Tensor]] = None,
        evictions_per_table: Optional[Dict[str, Optional[torch.Tensor]]] = None,
        remapped_kjt: Optional[Any] = None,
    ) -> None:
        super().__init__(sharding_contexts, input_features, reverse_indices)
        self.evictions_per_table = evictions_per_table
        self.remapped_kjt = remapped_kjt

    def record_stream(self, stream: torch.Stream) -> None:
        super().record_stream(stream)
        if self.remapped_kjt is not None:
            self.remapped_kjt.record_stream(stream)


class _LookupBase(nn.Module):
    def __init__(self, sharding: int, rank: int, mcc_remapper: ShardedMCCRemapper, lookup: nn.Module) -> None:
        super().__init__()
        self._sharding = sharding
        self._rank = rank
        self._mcc_remapper = mcc_remapper
        self._lookup = lookup

    def forward(self, features: KeyedJaggedTensor,
                return_remapped_features: bool = False) -> Tuple[Any, Optional[KeyedJaggedTensor]]:
        """``(lookup of the remapped features, remapped features as global rows or None)``."""
        remapped = self._mcc_remapper(features)
        result = self._lookup(remapped)
        if not return_remapped_features:
            return result, None
        return result, _with_offsets(remapped, self._mcc_remapper._feature_to_offset)


@public_at("recsys_lib.distributed.quant_embedding")
class ShardedMCECLookup(_LookupBase):
    """One rank's remap (``ShardedMCCRemapper``: local rows) then its EC lookup.

    Args:
        sharding: index of the sharding.
        rank: the rank.
        mcc_remapper: the rank's remap step.
        ec_lookup: the rank's lookup over local rows.
    """

    def __init__(self, sharding: int, rank: int, mcc_remapper: ShardedMCCRemapper, ec_lookup: nn.Module) -> None:
        super().__init__(sharding, rank, mcc_remapper, ec_lookup)


@public_at("recsys_lib.distributed.quant_embeddingbag")
class ShardedMCEBCLookup(_LookupBase):
    """One rank's remap (local rows) then its EBC lookup (arguments as ``ShardedMCECLookup``)."""

    def __init__(self, sharding: int, rank: int, mcc_remapper: ShardedMCCRemapper, ebc_lookup: nn.Module) -> None:
        super().__init__(sharding, rank, mcc_remapper, ebc_lookup)

    def forward(self, features: KeyedJaggedTensor) -> Any:  # type: ignore[override]
        """The EBC lookup of the remapped (local-row) features."""
        return self._lookup(self._mcc_remapper(features))


class _ShardedQuantMC(ShardedModule):
    """The shared body: a sharded inference MCC feeding a sharded quantized EC/EBC (see the module docstring)."""

    def __init__(self, module: nn.Module, plan: Dict[str, ParameterSharding], mc_sharder: Any, env: Any,
                 embedding: nn.Module, device: Optional[torch.device]) -> None:
        super().__init__()
        self._device = torch.device(device) if device is not None else torch.device("cpu")
        self._embedding_module = embedding
        self._managed_collision_collection = mc_sharder.shard(
            module._managed_collision_collection, plan, env=env,
            embedding_shardings=list(embedding.shardings().values()), device=self._device,
        )
        self._return_remapped_features: bool = module._return_remapped_features

    def create_context(self) -> NullShardedModuleContext:
        return NullShardedModuleContext()

    def input_dist(self, ctx: Any, features: KeyedJaggedTensor) -> KeyedJaggedTensor:  # type: ignore[override]
        return self._managed_collision_collection(features)

    def compute(self, ctx: Any, dist_input: KeyedJaggedTensor) -> Tuple[Any, KeyedJaggedTensor]:  # type: ignore[override]  # noqa: E501
        return self._embedding_module(dist_input), dist_input

    def output_dist(self, ctx: Any, output: Tuple[Any, KeyedJaggedTensor]) -> Tuple[Any, Optional[KeyedJaggedTensor]]:  # type: ignore[override]  # noqa: E501
        embeddings, remapped = output
        return embeddings, (remapped if self._return_remapped_features else None)

    def compute_and_output_dist(self, ctx: Any, input: KeyedJaggedTensor) -> Tuple[Any, Optional[KeyedJaggedTensor]]:  # type: ignore[override]  # noqa: E501
        return self.output_dist(ctx, self.compute(ctx, input))

    def forward(self, features: KeyedJaggedTensor) -> Tuple[Any, Optional[KeyedJaggedTensor]]:  # type: ignore[override]  # noqa: E501
        """``(embeddings as the unsharded module returns them, remapped KJT or None)``."""
        ctx = self.create_context()
        return self.compute_and_output_dist(ctx, self.input_dist(ctx, features))

    def sharded_parameter_names(self, prefix: str = "") -> List[str]:
        base = f"{prefix}." if prefix else ""
        return [base + n for n, _ in self.named_parameters()]

    def copy(self, device: torch.device) -> nn.Module:
        return self


@public_at("recsys_lib.distributed.quant_embedding")
class ShardedQuantManagedCollisionEmbeddingCollection(_ShardedQuantMC):
    """A ``QuantManagedCollisionEmbeddingCollection`` sharded row-wise for inference.

    Args:
        module: the quantized MC-EC.
        table_name_to_parameter_sharding: a row-wise plan entry per table.
        mc_sharder: shards the MCC (``InferManagedCollisionCollectionSharder``).
        env: ``world_size`` "ranks" (``ShardingEnv.from_local``) or ``{device: env}``.
        fused_params: passed to the EC sharding.
        device: where outputs are gathered (default CPU).
    """

    def __init__(
        self,
        module: QuantManagedCollisionEmbeddingCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        mc_sharder: InferManagedCollisionCollectionSharder,
        env: Any,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        from recsys_lib.distributed.quant_embedding import ShardedQuantEmbeddingCollection
        from recsys_lib.distributed.quant_embeddingbag import _one_env

        ec = ShardedQuantEmbeddingCollection(module, table_name_to_parameter_sharding, _one_env(env), fused_params,
                                             device)
        super().__init__(module, table_name_to_parameter_sharding, mc_sharder, env, ec, device)

    def forward(self, features: KeyedJaggedTensor) -> Tuple[Dict[str, JaggedTensor], Optional[KeyedJaggedTensor]]:  # type: ignore[override]  # noqa: E501
        return super().forward(features)

    def create_context(self) -> ManagedCollisionEmbeddingCollectionContext:  # type: ignore[override]
        return ManagedCollisionEmbeddingCollectionContext(sharding_contexts=[])


@public_at("recsys_lib.distributed.quant_embeddingbag")
class ShardedQuantManagedCollisionEmbeddingBagCollection(_ShardedQuantMC):
    """A ``QuantManagedCollisionEmbeddingBagCollection`` sharded row-wise for inference (arguments as
    ``ShardedQuantManagedCollisionEmbeddingCollection``)."""

    def __init__(
        self,
        module: QuantManagedCollisionEmbeddingBagCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        mc_sharder: InferManagedCollisionCollectionSharder,
        env: Any,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
    ) -> None:
        from recsys_lib.distributed.quant_embeddingbag import _one_env, ShardedQuantEmbeddingBagCollection

        ebc = ShardedQuantEmbeddingBagCollection(module, table_name_to_parameter_sharding, _one_env(env),
                                                 fused_params, device)
        super().__init__(module, table_name_to_parameter_sharding, mc_sharder, env, ebc, device)

    def forward(self, features: KeyedJaggedTensor) -> Tuple[KeyedTensor, Optional[KeyedJaggedTensor]]:  # type: ignore[override]  # noqa: E501
        return super().forward(features)


class _QuantMCSharder(BaseQuantEmbeddingSharder[Any]):
    """Shards a quantized MC collection: the EC/EBC sharder's kernels, row-wise only (the MC sharder's types)."""

    def __init__(self, e_sharder: BaseQuantEmbeddingSharder[Any], mc_sharder: InferManagedCollisionCollectionSharder) -> None:
        super().__init__(fused_params=e_sharder.fused_params)
        self._e_sharder = e_sharder
        self._mc_sharder = mc_sharder

    def shardable_parameters(self, module: Any) -> Dict[str, nn.Parameter]:
        return self._e_sharder.shardable_parameters(module)

    def compute_kernels(self, sharding_type: str, compute_device_type: str) -> List[str]:
        return self._e_sharder.compute_kernels(sharding_type, compute_device_type)

    def sharding_types(self, compute_device_type: str) -> List[str]:
        allowed = set(self._mc_sharder.sharding_types(compute_device_type))
        return [st for st in self._e_sharder.sharding_types(compute_device_type) if st in allowed]

    @property
    def fused_params(self) -> Optional[Dict[str, Any]]:
        return self._e_sharder.fused_params


@public_at("recsys_lib.distributed.quant_embedding")
class QuantManagedCollisionEmbeddingCollectionSharder(_QuantMCSharder):
    """Shards a ``QuantManagedCollisionEmbeddingCollection`` for inference.

    Args:
        e_sharder: the quantized EC sharder.
        mc_sharder: the inference MCC sharder.
    """

    def __init__(self, e_sharder: Any, mc_sharder: InferManagedCollisionCollectionSharder) -> None:
        super().__init__(e_sharder, mc_sharder)

    def shard(self, module: QuantManagedCollisionEmbeddingCollection, params: Dict[str, ParameterSharding],
              env: Any, device: Optional[torch.device] = None,
              module_fqn: Optional[str] = None) -> ShardedQuantManagedCollisionEmbeddingCollection:
        return ShardedQuantManagedCollisionEmbeddingCollection(module, params, self._mc_sharder, env,
                                                               self.fused_params, device)

    @property
    def module_type(self) -> Type[QuantManagedCollisionEmbeddingCollection]:
        return QuantManagedCollisionEmbeddingCollection


@public_at("recsys_lib.distributed.quant_embeddingbag")
class QuantManagedCollisionEmbeddingBagCollectionSharder(_QuantMCSharder):
    """Shards a ``QuantManagedCollisionEmbeddingBagCollection`` for inference (arguments as the EC one's)."""

    def __init__(self, e_sharder: Any, mc_sharder: InferManagedCollisionCollectionSharder) -> None:
        super().__init__(e_sharder, mc_sharder)

    def shard(self, module: QuantManagedCollisionEmbeddingBagCollection, params: Dict[str, ParameterSharding],
              env: Any, device: Optional[torch.device] = None,
              module_fqn: Optional[str] = None) -> ShardedQuantManagedCollisionEmbeddingBagCollection:
        return ShardedQuantManagedCollisionEmbeddingBagCollection(module, params, self._mc_sharder, env,
                                                                  self.fused_params, device)

    @property
    def module_type(self) -> Type[QuantManagedCollisionEmbeddingBagCollection]:
        return QuantManagedCollisionEmbeddingBagCollection
