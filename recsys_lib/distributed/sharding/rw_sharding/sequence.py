"""Row-wise sequence sharding (EC): row blocks as in ``pooled.py``, one embedding row per id.

Per batch: the same bucketized input dist as the pooled sharding (plus the unbucketize permutation); the
lookup returns ``[ids, D]`` in the received KJT's order; one sequence all-to-all sends every id's
row back to the rank that owns its sample. Rank r receives its rows in *bucketized* order (bucket 0's ids of
every feature, then bucket 1's, ...) and the unbucketize permutation puts them back in the original id order
(feature-major, samples in order)::

    my ids of f0: [7, 1]  (block 5, W=2)   bucketized: bucket 0 [1], bucket 1 [2 (=7-5)]
    rows received: [row(1), row(7)]          permute [1, 0] -> [row(7), row(1)]

Split sizes of the all-to-all: ``input_splits[k]`` = ids of rank k's samples in my received KJT,
``output_splits[k]`` = ids I sent to rank k (bucket k), carried from the input dist.
"""

from typing import Any, Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._core.enums import CommOp
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._dist.sequence import sequence_recat
from recsys_lib.distributed.embedding_lookup import GroupedEmbeddingsLookup
from recsys_lib.distributed.embedding_sharding import BaseEmbeddingDist, EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed._sharded.table_types import BaseGroupedFeatureProcessor
from recsys_lib.distributed.sharding.rw_sharding._local_order import prepare_lookup
from recsys_lib.distributed.sharding.rw_sharding.placement import RowPlacementQueries, row_wise_placement
from recsys_lib.distributed.sharding.rw_sharding.pooled import RwSparseFeaturesDist, codecs_for, require_pg
from recsys_lib.distributed.sharding.rw_sharding.write_dist import RowWriteUpdate, RwSparseFeaturesWriteDist
from recsys_lib.distributed.sharding.tw_sharding.sequence import as_rows, return_splits, send_rows_back, uniform_dim
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


class RwSequenceEmbeddingDist(BaseEmbeddingDist[EmbeddingShardingContext, torch.Tensor, torch.Tensor]):
    """``[ids, D]`` rows back to their samples' ranks, then unbucketized (see the module docstring).

    Needs ``sharding_ctx.batch_size_per_rank`` (or ``batch_size_per_rank_per_feature`` for a variable batch per
    feature) and ``lengths_after_input_dist`` (filled by the sharded module). The rows move as in table-wise
    sequence sharding (``send_rows_back``), every rank looking up every feature.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        num_features: int,
        device: Optional[torch.device] = None,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__()
        self._pg = pg
        self._world = dist.get_world_size(pg)
        self._num_features = num_features
        # Row width for ranks whose lookup returns a flat (empty) tensor; the sharding sets it from its tables.
        self._embedding_dim: Optional[int] = None
        self._codecs = codecs_for(qcomm_codecs_registry, CommOp.SEQUENCE_EMBEDDINGS_ALL_TO_ALL)
        recat = sequence_recat(num_features, self._world)
        self._recat: Optional[torch.Tensor] = torch.tensor(recat, dtype=torch.int64) if recat else None

    def forward(
        self, local_embs: torch.Tensor, sharding_ctx: Optional[EmbeddingShardingContext] = None
    ) -> Awaitable[torch.Tensor]:
        if sharding_ctx is None or sharding_ctx.lengths_after_input_dist is None:
            raise ValueError("row-wise sequence output dist needs the sharding context filled by the sharded module")
        batch = sharding_ctx.require_input_dist_facts("row-wise sequence output dist")
        sent = batch.bucketized_length_per_key
        if sent is None:
            raise RuntimeError("row-wise sequence output dist: the input dist was not built for sequences")
        rows = as_rows(local_embs, self._embedding_dim, "row-wise sequence output dist")
        output_splits = return_splits(sent, [self._num_features] * self._world)
        return send_rows_back(
            rows, sharding_ctx, self._num_features, output_splits, self._recat, self._pg, self._codecs,
            unbucketize_permute=batch.unbucketize_permute,
        )


class RwSequenceEmbeddingSharding(
    RowPlacementQueries,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor]
):
    """Row-wise sequence sharding (see the module docstring). Args as ``RwPooledEmbeddingSharding``."""

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        need_pos: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
        device_type_from_sharding_infos: Optional[Union[str, Tuple[str, ...]]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        self._device_type_from_sharding_infos = device_type_from_sharding_infos
        self._need_pos = need_pos
        self._env = env
        self._pg = require_pg(env, "row-wise")
        self._device = device
        self._world_size = env.world_size
        self._placement = row_wise_placement(sharding_infos, env.world_size, env.rank)
        self._dim = uniform_dim(self.embedding_dims(), "row-wise")

    def create_input_dist(self, device: Optional[torch.device] = None) -> RwSparseFeaturesDist:
        return RwSparseFeaturesDist.from_row_buckets(self._pg, self._placement.row_buckets(), is_sequence=True)

    def create_lookup(
        self,
        device: Optional[torch.device] = None,
        fused_params: Optional[Dict[str, Any]] = None,
        feature_processor: Optional[BaseGroupedFeatureProcessor] = None,
    ) -> GroupedEmbeddingsLookup:
        lookup = GroupedEmbeddingsLookup(
            grouped_configs=self._placement.local_grouped_configs, pg=self._pg,
            device=device if device is not None else self._device,
        )
        return prepare_lookup(lookup, self._placement.local_feature_order(), self._placement.feature_dims(), True)

    def create_output_dist(self, device: Optional[torch.device] = None) -> RwSequenceEmbeddingDist:
        out = RwSequenceEmbeddingDist(
            self._pg, len(self.feature_names()), device if device is not None else self._device,
            self.qcomm_codecs_registry,
        )
        out._embedding_dim = self._dim
        return out

    def create_write_dist(self, device: Optional[torch.device] = None) -> RwSparseFeaturesWriteDist:
        """Sends rows to be written to the ranks owning them (this sharding's row blocks)."""
        return RwSparseFeaturesWriteDist.from_row_buckets(self._pg, self._placement.row_buckets(), is_sequence=True)

    def create_update(self, grouped_embeddings_lookup: nn.Module) -> RowWriteUpdate:
        """Writes what :meth:`create_write_dist` delivers into ``grouped_embeddings_lookup``'s local rows."""
        return RowWriteUpdate(grouped_embeddings_lookup)
