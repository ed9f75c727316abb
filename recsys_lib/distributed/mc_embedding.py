"""Sharded ``ManagedCollisionEmbeddingCollection`` and its sharder (``torchrec.distributed.mc_embedding``).

Row-wise only; see ``mc_embedding_modules.py`` for the per-batch flow. Example (every rank)::

    sharder = ManagedCollisionEmbeddingCollectionSharder()
    plan = construct_module_sharding_plan(mc_ec, {"t": row_wise()}, world_size=W, device_type="cpu",
                                          sharder=sharder)
    sharded = sharder.shard(mc_ec, plan, ShardingEnv.from_process_group(pg), torch.device("cpu"))
    embeddings, remapped = sharded(kjt_of_raw_ids).wait()   # {feature: JT (N_f, D)}, KJT of rows or None
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Type

import torch

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed.embedding import EmbeddingCollectionContext, EmbeddingCollectionSharder
from recsys_lib.distributed.mc_embedding_modules import (
    BaseManagedCollisionEmbeddingCollectionSharder,
    BaseShardedManagedCollisionEmbeddingCollection,
    record_mc_streams,
)
from recsys_lib.distributed.mc_modules import ManagedCollisionCollectionSharder
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclass
class ManagedCollisionEmbeddingCollectionContext(EmbeddingCollectionContext):
    """Per-batch state: the EC context plus this batch's evictions and remapped KJT."""

    sharding_contexts: List[Any] = field(default_factory=list)
    input_features: List[KeyedJaggedTensor] = field(default_factory=list)
    reverse_indices: List[torch.Tensor] = field(default_factory=list)
    seq_vbe_ctx: List[Any] = field(default_factory=list)
    table_name_to_unpruned_hash_sizes: Dict[str, int] = field(default_factory=dict)
    early_releasable_inputs: List[KeyedJaggedTensor] = field(default_factory=list)
    evictions_per_table: Optional[Dict[str, Optional[torch.Tensor]]] = None
    remapped_kjt: Optional[Any] = None
    mc_ctx: Any = field(default=None, init=False)
    e_ctx: Any = field(default=None, init=False)

    def record_stream(self, stream: torch.Stream) -> None:
        super().record_stream(stream)
        record_mc_streams(self.evictions_per_table, self.remapped_kjt, stream)


class ShardedManagedCollisionEmbeddingCollection(
    BaseShardedManagedCollisionEmbeddingCollection[ManagedCollisionEmbeddingCollectionContext]
):
    """A ``ManagedCollisionEmbeddingCollection`` sharded row-wise; ``forward(kjt).wait()`` returns
    ``({feature: JaggedTensor (N_f, D)}, remapped KJT or None)`` for this rank's batch.

    Args:
        module: the unsharded MC-EC.
        table_name_to_parameter_sharding: row-wise plan entries.
        ec_sharder: shards the EC.
        mc_sharder: shards the MCC.
        env: world, rank and process group.
        device: where shards and MC state live.
    """

    def __init__(
        self,
        module: ManagedCollisionEmbeddingCollection,
        table_name_to_parameter_sharding: Dict[str, ParameterSharding],
        ec_sharder: EmbeddingCollectionSharder,
        mc_sharder: ManagedCollisionCollectionSharder,
        env: ShardingEnv,
        device: torch.device,
    ) -> None:
        super().__init__(module, table_name_to_parameter_sharding, ec_sharder, mc_sharder, env, device)

    @property
    def _embedding_collection(self) -> Any:
        return self._embedding_module

    def create_context(self) -> ManagedCollisionEmbeddingCollectionContext:
        return ManagedCollisionEmbeddingCollectionContext(sharding_contexts=[])

    @property
    def unsharded_module_type(self) -> Type[ManagedCollisionEmbeddingCollection]:
        return ManagedCollisionEmbeddingCollection


class ManagedCollisionEmbeddingCollectionSharder(
    BaseManagedCollisionEmbeddingCollectionSharder[ManagedCollisionEmbeddingCollection]
):
    """Shards ``ManagedCollisionEmbeddingCollection`` s (row-wise).

    Args:
        ec_sharder: default ``EmbeddingCollectionSharder(fused_params, qcomm_codecs_registry)``.
        mc_sharder: default ``ManagedCollisionCollectionSharder()``.
        fused_params: for the default EC sharder.
        qcomm_codecs_registry: wire codecs.
    """

    def __init__(
        self,
        ec_sharder: Optional[EmbeddingCollectionSharder] = None,
        mc_sharder: Optional[ManagedCollisionCollectionSharder] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(
            ec_sharder or EmbeddingCollectionSharder(fused_params=fused_params, qcomm_codecs_registry=qcomm_codecs_registry),
            mc_sharder or ManagedCollisionCollectionSharder(),
            qcomm_codecs_registry=qcomm_codecs_registry,
        )

    @property
    def sharded_module_type(self) -> Type[ShardedManagedCollisionEmbeddingCollection]:
        return ShardedManagedCollisionEmbeddingCollection

    @property
    def module_type(self) -> Type[ManagedCollisionEmbeddingCollection]:
        return ManagedCollisionEmbeddingCollection
