"""Sharders of ``EmbeddingTower`` and ``EmbeddingTowerCollection`` (table-row-wise / table-column-wise only)."""

from typing import Any, Dict, List, Optional, Tuple, Type

import torch
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._sharded.module_bases import BaseEmbeddingSharder
from recsys_lib.distributed._tower.collection import ShardedEmbeddingTowerCollection
from recsys_lib.distributed._tower.sharded import ShardedEmbeddingTower
from recsys_lib.distributed.sharding.strategy import tower_sharding_types
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.embedding_tower import EmbeddingTower, EmbeddingTowerCollection


@public_at("recsys_lib.distributed.embedding_tower_sharding")
class EmbeddingTowerSharder(BaseEmbeddingSharder[EmbeddingTower]):
    """Shards an ``EmbeddingTower`` onto one host (its tables TWRW or TWCW there; ``ShardedEmbeddingTower``).

    Args:
        fused_params / qcomm_codecs_registry: as ``EmbeddingBagCollectionSharder``.
        sharded_module_order_overwrite: accepted and kept (lower-cased), as TorchRec's embedding sharders do;
            towers have one sharded module each, so it orders nothing.
    """

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        sharded_module_order_overwrite: Optional[List[str]] = None,
    ) -> None:
        super().__init__(fused_params=fused_params, qcomm_codecs_registry=qcomm_codecs_registry)
        self._sharded_module_order_overwrite: Optional[List[str]] = (
            [s.lower() for s in sharded_module_order_overwrite] if sharded_module_order_overwrite is not None else None
        )

    def shard(
        self,
        module: EmbeddingTower,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedEmbeddingTower:
        kjt_features, wkjt_features = self.embedding_feature_names(module)
        return ShardedEmbeddingTower(
            module=module, table_name_to_parameter_sharding=params, embedding_sharder=self.embedding_sharder(module),
            kjt_features=kjt_features, wkjt_features=wkjt_features, env=env, fused_params=self.fused_params,
            device=device, qcomm_codecs_registry=self.qcomm_codecs_registry,
        )

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return tower_sharding_types()

    def shardable_parameters(self, module: EmbeddingTower) -> Dict[str, nn.Parameter]:
        return self.embedding_sharder(module).shardable_parameters(module.embedding)

    @property
    def module_type(self) -> Type[EmbeddingTower]:
        return EmbeddingTower

    def embedding_sharder(self, module: EmbeddingTower) -> BaseEmbeddingSharder[nn.Module]:
        """The EBC or EC sharder for the tower's embedding module (``RuntimeError`` for anything else)."""
        from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
        from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder

        if isinstance(module.embedding, EmbeddingBagCollection):
            return EmbeddingBagCollectionSharder(self.fused_params, qcomm_codecs_registry=self.qcomm_codecs_registry)
        if isinstance(module.embedding, EmbeddingCollection):
            return EmbeddingCollectionSharder(self.fused_params, qcomm_codecs_registry=self.qcomm_codecs_registry)
        raise RuntimeError(f"Unsupported embedding type: {type(module)}")

    def embedding_feature_names(self, module: EmbeddingTower) -> Tuple[List[str], List[str]]:
        """(unweighted features, weighted features) of the tower's tables."""
        embedding = module.embedding
        if isinstance(embedding, EmbeddingBagCollection):
            configs: List[Any] = embedding.embedding_bag_configs()
            weighted = embedding.is_weighted()
        elif isinstance(embedding, EmbeddingCollection):
            configs, weighted = embedding.embedding_configs(), False
        else:
            raise RuntimeError(f"Unsupported embedding type: {type(embedding)}")
        kjt: List[str] = []
        wkjt: List[str] = []
        for config in configs:
            (wkjt if getattr(config, "weighted", weighted) else kjt).extend(config.feature_names)
        return kjt, wkjt


@public_at("recsys_lib.distributed.embedding_tower_sharding")
class EmbeddingTowerCollectionSharder(BaseEmbeddingSharder[EmbeddingTowerCollection]):
    """Shards an ``EmbeddingTowerCollection``: every tower on the host holding its tables."""

    def __init__(
        self,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(fused_params=fused_params, qcomm_codecs_registry=qcomm_codecs_registry)
        self._tower_sharder = EmbeddingTowerSharder(self.fused_params, qcomm_codecs_registry=qcomm_codecs_registry)

    def shard(
        self,
        module: EmbeddingTowerCollection,
        params: Dict[str, ParameterSharding],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        module_fqn: Optional[str] = None,
    ) -> ShardedEmbeddingTowerCollection:
        return ShardedEmbeddingTowerCollection(
            module=module, table_name_to_parameter_sharding=params, tower_sharder=self._tower_sharder, env=env,
            fused_params=self.fused_params, device=device, qcomm_codecs_registry=self.qcomm_codecs_registry,
        )

    def sharding_types(self, compute_device_type: str) -> List[str]:
        return tower_sharding_types()

    def shardable_parameters(self, module: EmbeddingTowerCollection) -> Dict[str, nn.Parameter]:
        out: Dict[str, nn.Parameter] = {}
        for tower in module.towers:
            out.update(self._tower_sharder.shardable_parameters(tower))
        return out

    @property
    def module_type(self) -> Type[EmbeddingTowerCollection]:
        return EmbeddingTowerCollection
