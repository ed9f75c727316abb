"""Sharding a ``FusedEmbeddingCollection`` (TorchRec's ``torchrec.distributed.fused_embedding``).

A ``ShardedEmbeddingCollection`` whose fused kernels keep the module's optimizer (see ``fused_embeddingbag``).
"""

from typing import Any, Dict, Optional, Type

import torch
from torch import nn

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.embedding import EmbeddingCollectionSharder, ShardedEmbeddingCollection
from recsys_lib.distributed.fused_embeddingbag import module_fused_params
from recsys_lib.modules.fused_embedding_modules import FusedEmbeddingCollection


class ShardedFusedEmbeddingCollection(ShardedEmbeddingCollection):
    """A sharded ``FusedEmbeddingCollection`` (the EC machinery with the module's optimizer)."""

    def __init__(
        self,
        module: FusedEmbeddingCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        env: ShardingEnv,
        fused_params: Optional[Dict[str, Any]] = None,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        module_fqn: Optional[str] = None,
    ) -> None:
        super().__init__(
            module, table_name_to_parameter_sharding, env, module_fused_params(module, fused_params), device,
            qcomm_codecs_registry, module_fqn=module_fqn,
        )

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return FusedEmbeddingCollection


class FusedEmbeddingCollectionSharder(EmbeddingCollectionSharder):
    """Shards ``FusedEmbeddingCollection`` s (sharding types as ``EmbeddingCollectionSharder``)."""

    def shard(  # type: ignore[override]
        self,
        module: FusedEmbeddingCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedFusedEmbeddingCollection:
        return ShardedFusedEmbeddingCollection(
            module, params, env, self.fused_params, device, self.qcomm_codecs_registry, module_fqn
        )

    def shardable_parameters(self, module: FusedEmbeddingCollection) -> Dict[str, nn.Parameter]:  # type: ignore[override]
        return {name: holder.weight for name, holder in module.embeddings.items()}

    @property
    def module_type(self) -> Type[FusedEmbeddingCollection]:  # type: ignore[override]
        return FusedEmbeddingCollection
