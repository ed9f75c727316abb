"""Sharding a ``FusedEmbeddingCollection`` (TorchRec's ``torchrec.distributed.fused_embedding``).

A ``ShardedEmbeddingCollection`` whose fused kernels keep the module's optimizer (see ``fused_embeddingbag``).
"""

from typing import Any, Dict, List, Optional, Type

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
        device: Optional[torch.device] = None,
    ) -> None:
        # The module's own optimizer drives the fused kernels (the sharder's fused_params are not used).
        super().__init__(module, table_name_to_parameter_sharding, env, module_fused_params(module, None), device)

    @property
    def unsharded_module_type(self) -> Type[nn.Module]:
        return FusedEmbeddingCollection


class FusedEmbeddingCollectionSharder(EmbeddingCollectionSharder):
    """Shards ``FusedEmbeddingCollection`` s (sharding types as ``EmbeddingCollectionSharder``).

    Args:
        fused_params / qcomm_codecs_registry / sharded_module_order_overwrite: as ``BaseEmbeddingSharder``.
    """

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        sharded_module_order_overwrite: Optional[List[str]] = None,
    ) -> None:
        super().__init__(fused_params, qcomm_codecs_registry)
        self._sharded_module_order_overwrite = (
            None if sharded_module_order_overwrite is None else [s.lower() for s in sharded_module_order_overwrite]
        )

    def shard(  # type: ignore[override]
        self,
        module: FusedEmbeddingCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedFusedEmbeddingCollection:
        return ShardedFusedEmbeddingCollection(module, params, env, device)

    def shardable_parameters(self, module: FusedEmbeddingCollection) -> Dict[str, nn.Parameter]:  # type: ignore[override]
        return {name: holder.weight for name, holder in module.embeddings.items()}

    @property
    def module_type(self) -> Type[FusedEmbeddingCollection]:  # type: ignore[override]
        return FusedEmbeddingCollection
