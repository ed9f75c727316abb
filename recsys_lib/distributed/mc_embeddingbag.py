"""Sharded ``ManagedCollisionEmbeddingBagCollection`` and its sharder (``torchrec.distributed.mc_embeddingbag``).

Row-wise only; see ``mc_embedding_modules.py`` for the per-batch flow. ``sharded(kjt).wait()`` returns
``(KeyedTensor (B, sum D), remapped KJT or None)`` for this rank's batch.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Type

import torch

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionContext, EmbeddingBagCollectionSharder
from recsys_lib.distributed.mc_embedding_modules import (
    BaseManagedCollisionEmbeddingCollectionSharder,
    BaseShardedManagedCollisionEmbeddingCollection,
    record_mc_streams,
)
from recsys_lib.distributed.mc_modules import ManagedCollisionCollectionSharder
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingBagCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass
class ManagedCollisionEmbeddingBagCollectionContext(EmbeddingBagCollectionContext):
    """Per-batch state: the EBC context plus this batch's evictions and remapped KJT."""

    sharding_contexts: List[Any] = field(default_factory=list)
    inverse_indices: Optional[Tuple[Any, torch.Tensor]] = None
    variable_batch_per_feature: bool = False
    divisor: Optional[torch.Tensor] = None
    early_releasable_inputs: List[KeyedJaggedTensor] = field(default_factory=list)
    evictions_per_table: Optional[Dict[str, Optional[torch.Tensor]]] = None
    remapped_kjt: Optional[Any] = None
    seq_vbe_ctx: List[Any] = field(default_factory=list)
    batch_size_per_feature: Dict[str, int] = field(default_factory=dict, init=False)
    mc_ctx: Any = field(default=None, init=False)
    e_ctx: Any = field(default=None, init=False)

    def record_stream(self, stream: torch.Stream) -> None:
        super().record_stream(stream)
        record_mc_streams(self.evictions_per_table, self.remapped_kjt, stream)


class ShardedManagedCollisionEmbeddingBagCollection(
    BaseShardedManagedCollisionEmbeddingCollection[ManagedCollisionEmbeddingBagCollectionContext]
):
    """A ``ManagedCollisionEmbeddingBagCollection`` sharded row-wise.

    Args:
        module: the unsharded MC-EBC.
        table_name_to_parameter_sharding: row-wise plan entries.
        ebc_sharder: shards the EBC.
        mc_sharder: shards the MCC.
        env: world, rank and process group.
        device: where shards and MC state live.
    """

    def __init__(
        self,
        module: ManagedCollisionEmbeddingBagCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        ebc_sharder: EmbeddingBagCollectionSharder,
        mc_sharder: ManagedCollisionCollectionSharder,
        env: ShardingEnv,
        device: torch.device,
    ) -> None:
        super().__init__(module, table_name_to_parameter_sharding, ebc_sharder, mc_sharder, env, device)

    @property
    def _embedding_bag_collection(self) -> Any:
        return self._embedding_module

    def create_context(self) -> ManagedCollisionEmbeddingBagCollectionContext:
        return ManagedCollisionEmbeddingBagCollectionContext(sharding_contexts=[])

    @property
    def unsharded_module_type(self) -> Type[ManagedCollisionEmbeddingBagCollection]:
        return ManagedCollisionEmbeddingBagCollection


class ManagedCollisionEmbeddingBagCollectionSharder(
    BaseManagedCollisionEmbeddingCollectionSharder[ManagedCollisionEmbeddingBagCollection]
):
    """Shards ``ManagedCollisionEmbeddingBagCollection`` s (row-wise).

    Args:
        ebc_sharder: default ``EmbeddingBagCollectionSharder(fused_params, qcomm_codecs_registry)``.
        mc_sharder: default ``ManagedCollisionCollectionSharder()``.
        fused_params: for the default EBC sharder.
        qcomm_codecs_registry: wire codecs.
    """

    def __init__(
        self,
        ebc_sharder: Optional[EmbeddingBagCollectionSharder] = None,
        mc_sharder: Optional[ManagedCollisionCollectionSharder] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(
            ebc_sharder or EmbeddingBagCollectionSharder(fused_params=fused_params,
                                                         qcomm_codecs_registry=qcomm_codecs_registry),
            mc_sharder or ManagedCollisionCollectionSharder(),
            qcomm_codecs_registry=qcomm_codecs_registry,
        )

    @property
    def sharded_module_type(self) -> Type[ShardedManagedCollisionEmbeddingBagCollection]:
        return ShardedManagedCollisionEmbeddingBagCollection

    @property
    def module_type(self) -> Type[ManagedCollisionEmbeddingBagCollection]:
        return ManagedCollisionEmbeddingBagCollection
