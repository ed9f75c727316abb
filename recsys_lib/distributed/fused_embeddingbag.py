"""Sharding a ``FusedEmbeddingBagCollection`` (TorchRec's ``torchrec.distributed.fused_embeddingbag``).

The sharded module is a ``ShardedEmbeddingBagCollection`` whose fused kernels keep the module's optimizer:
``optimizer_type`` / ``optimizer_kwargs`` become the kernels' FBGEMM optimizer (``EmbOptimType``) and
arguments, overriding the sharder's ``fused_params`` of the same names.
"""

from typing import Any, Dict, List, Optional, Type

import torch
from torch import nn

from recsys_lib.distributed.embeddingbag import ShardedEmbeddingBagCollection
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.modules.fused_embedding_modules import FusedEmbeddingBagCollection


def module_fused_params(module: nn.Module, fused_params: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """The sharder's ``fused_params`` updated with the fused module's own optimizer (FBGEMM names)."""
    from recsys_lib.optim._emb_opt_type import convert_optimizer_kwargs_to_fbgemm, optimizer_type_to_emb_opt_type

    out = dict(fused_params or {})
    out["optimizer"] = optimizer_type_to_emb_opt_type(module.optimizer_type())
    out.update(convert_optimizer_kwargs_to_fbgemm(module.optimizer_kwargs()))
    return out


class ShardedFusedEmbeddingBagCollection(ShardedEmbeddingBagCollection):
    """A sharded ``FusedEmbeddingBagCollection`` (the EBC machinery with the module's optimizer)."""

    def __init__(
        self,
        module: FusedEmbeddingBagCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        # The module's own optimizer drives the fused kernels (the sharder's fused_params are not used).
        super().__init__(
            module, table_name_to_parameter_sharding, env, module_fused_params(module, None), device,
            qcomm_codecs_registry,
        )

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return FusedEmbeddingBagCollection


class FusedEmbeddingBagCollectionSharder(BaseEmbeddingSharder[FusedEmbeddingBagCollection]):
    """Shards ``FusedEmbeddingBagCollection`` s; cpu ``dp, tw, cw, twcw`` (+ ``rw, twrw`` on cuda, no grid)."""

    def shard(
        self,
        module: FusedEmbeddingBagCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedFusedEmbeddingBagCollection:
        return ShardedFusedEmbeddingBagCollection(module, params, env, device, self.qcomm_codecs_registry)

    def shardable_parameters(self, module: FusedEmbeddingBagCollection) -> Dict[str, nn.Parameter]:
        return {name: holder.weight for name, holder in module.embedding_bags.items()}

    def sharding_types(self, compute_device_type: str) -> List[str]:
        from recsys_lib.distributed.sharding.strategy import strategy_for

        return [t for t in super().sharding_types(compute_device_type) if strategy_for(t).supports_fused_ebc]

    @property
    def module_type(self) -> Type[FusedEmbeddingBagCollection]:
        return FusedEmbeddingBagCollection
