"""Zero-collision key-value kernels: virtual tables whose ids hash into buckets owned by ranks.

A virtual table (``use_virtual_table=True``) of ``num_embeddings`` ids in ``total_num_buckets`` buckets gives
each rank a contiguous bucket range; rows exist only for ids seen so far. With ``N`` buckets on ``W`` ranks the
first ``N % W`` ranks own one extra bucket (:func:`sharded_local_buckets`)::

    N=10, W=4:  rank 0 -> [0, 3)   rank 1 -> [3, 6)   rank 2 -> [6, 8)   rank 3 -> [8, 10)   bucket size R/N

Like the other key-value kernels these need FBGEMM's CUDA package (``require_kv_backend``): on the CPU package
construction raises ``RuntimeError`` naming the missing store class and CUDA.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from fbgemm_gpu.tbe.ssd.ssd_config import BackendType
from torch.distributed import ProcessGroup

from recsys_lib._public import public_at
from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig, ShardedEmbeddingTable
from recsys_lib.distributed._tbe.pooled import check_features, tbe_indices_offsets
from recsys_lib.distributed._tbe.key_value import KeyValueMethods, make_kv_tbe, require_kv_backend
from recsys_lib.distributed._tbe.kv_optimizer import ZeroCollisionKeyValueEmbeddingFusedOptimizer
from recsys_lib.distributed._tbe.pooled import BaseBatchedEmbeddingBag
from recsys_lib.distributed._tbe.sequence import BaseBatchedEmbedding
from recsys_lib.distributed.embedding_kernel import create_virtual_sharded_tensors
from recsys_lib.optim.fused import FusedOptimizerModule


def sharded_local_buckets(
    tables: List[ShardedEmbeddingTable], world_size: int, rank: int
) -> List[Tuple[int, int, int]]:
    """``(first bucket, end bucket, rows per bucket)`` of each virtual table on ``rank`` (see module doc)."""
    out: List[Tuple[int, int, int]] = []
    for t in tables:
        n = t.total_num_buckets
        if not n or t.num_embeddings % n != 0:
            raise ValueError(
                f"table {t.name!r}: num_embeddings={t.num_embeddings} must be a multiple of total_num_buckets={n}"
            )
        base, extra = divmod(n, world_size)
        start = rank * base + min(rank, extra)
        end = start + base + (1 if rank < extra else 0)
        out.append((start, end, t.num_embeddings // n))
    return out


def zero_collision_params(config: GroupedEmbeddingConfig, buckets: List[Tuple[int, int, int]],
                          backend_type: Any, embedding_cache_mode: bool) -> Dict[str, Any]:
    """``kv_zch_params`` (and the optimizer in cache mode) for the key-value TBE of ``config``."""
    from fbgemm_gpu.tbe.ssd.ssd_config import EvictionPolicy, KVZCHParams

    evicting = [
        t.name for t in config.embedding_tables
        if t.virtual_table_eviction_policy is not None
        and type(t.virtual_table_eviction_policy).__name__ != "NoEvictionPolicy"
    ]
    if evicting:
        raise ValueError(f"tables {evicting}: zero-collision kernels here support NoEvictionPolicy only")
    headers = [
        t.virtual_table_eviction_policy.get_meta_header_len() if t.virtual_table_eviction_policy is not None else 0
        for t in config.embedding_tables
    ]
    cache_mode = embedding_cache_mode or bool((config.fused_params or {}).get("embedding_cache_mode", False))
    params: Dict[str, Any] = {
        "backend_type": backend_type,
        "kv_zch_params": KVZCHParams(
            bucket_offsets=[(s, e) for s, e, _ in buckets],
            bucket_sizes=[size for _, _, size in buckets],
            enable_optimizer_offloading=True,
            backend_return_whole_row=backend_type in (BackendType.DRAM, BackendType.DRAM_SSD),
            eviction_policy=EvictionPolicy(meta_header_lens=headers),
            embedding_cache_mode=cache_mode,
        ),
    }
    if cache_mode:
        from fbgemm_gpu.split_embedding_configs import EmbOptimType

        params["optimizer"] = EmbOptimType.EXACT_ROWWISE_ADAGRAD
    return params


class ZeroCollisionMethods(KeyValueMethods):
    """Virtual-table views shared by the pooled and sequence zero-collision kernels."""

    _split_weights_res: Optional[Tuple[List[Any], List[Any], List[Any], Optional[List[Any]]]]
    _table_name_to_weight_count_per_rank: Dict[str, List[int]]

    def _build_zero_collision(self, kernel: str, config: GroupedEmbeddingConfig, device: Optional[torch.device],
                              pooling_mode: Any, pg: Optional[ProcessGroup], backend_type: Any,
                              embedding_cache_mode: bool) -> None:
        require_kv_backend(kernel, backend_type)
        if not config.is_using_virtual_table():
            raise ValueError(f"{kernel} serves virtual tables (use_virtual_table=True); got {config.table_names()}")
        world = dist.get_world_size(pg) if pg is not None else 1
        rank = dist.get_rank(pg) if pg is not None else 0
        self._bucket_spec = sharded_local_buckets(config.embedding_tables, world, rank)
        extra = zero_collision_params(config, self._bucket_spec, backend_type, embedding_cache_mode)
        self.embedding_cache_mode = extra["kv_zch_params"].embedding_cache_mode
        # A virtual table's TBE spans the whole id space (rows appear as ids arrive).
        rows = [t.num_embeddings for t in config.embedding_tables]
        self._emb_module = make_kv_tbe(kernel, config, self._layout, device, pooling_mode, pg, extra, rows)  # type: ignore[attr-defined]
        self._split_weights_res = None
        self._table_name_to_weight_count_per_rank = {}
        self._init_sharded_split_embedding_weights()
        assert self._split_weights_res is not None
        self._optim = ZeroCollisionKeyValueEmbeddingFusedOptimizer(
            config, self._emb_module, self._split_weights_res[0], self._table_name_to_weight_count_per_rank,
            self._split_weights_res[1], pg,
        )

    def _init_sharded_split_embedding_weights(self, prefix: str = "", force_regenerate: bool = False) -> None:
        """Virtual ShardedTensors of the rows seen so far (weights, ids, bucket counts), counts gathered."""
        if self._split_weights_res is not None and not force_regenerate:
            return
        weights, ids, buckets, metadata = self._emb_module.split_embedding_weights(no_snapshot=False)
        tables = self._config.embedding_tables
        counts: Dict[str, List[int]] = {}
        world = dist.get_world_size(self._pg) if self._pg is not None else 1
        for table, w in zip(tables, weights):
            local = torch.tensor([w.size(0)], dtype=torch.long)
            if self._pg is not None:
                every = [torch.zeros_like(local) for _ in range(world)]
                dist.all_gather(every, local, group=self._pg)
                counts[table.name] = [int(x.item()) for x in every]
            else:
                counts[table.name] = [int(local.item())]
        self._table_name_to_weight_count_per_rank = counts
        sharded_w = create_virtual_sharded_tensors(tables, list(weights), self._pg, prefix, counts)
        sharded_ids = create_virtual_sharded_tensors(tables, list(ids or []), self._pg, prefix, counts)
        sharded_buckets = create_virtual_sharded_tensors(
            tables, list(buckets or []), self._pg, prefix, None, use_param_size_as_rows=True
        )
        self._split_weights_res = (sharded_w, sharded_ids, sharded_buckets, metadata)

    def split_embedding_weights(  # type: ignore[override]
        self, no_snapshot: bool = True, should_flush: bool = False
    ) -> Tuple[Any, Any, Any, Any]:
        return self._emb_module.split_embedding_weights(no_snapshot, should_flush)

    def get_named_split_embedding_weights_snapshot(self, prefix: str = "") -> Any:
        """``(table, weights, weight ids, bucket counts, metadata)`` per table, as virtual ShardedTensors."""
        self._init_sharded_split_embedding_weights()
        assert self._split_weights_res is not None
        weights, ids, buckets, metadata = self._split_weights_res
        for i, table in enumerate(self._config.embedding_tables):
            meta = metadata[i] if metadata is not None and i < len(metadata) else None
            yield f"{prefix}{table.name}", weights[i], ids[i], buckets[i], meta

    def _reset_split_weights(self) -> None:
        self._split_weights_res = None
        self._optim.set_sharded_embedding_weight_ids(None)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ZeroCollisionKeyValueEmbeddingBag(ZeroCollisionMethods, BaseBatchedEmbeddingBag, FusedOptimizerModule):
    """Pooled zero-collision kernel (``ssd_virtual_table`` / ``dram_virtual_table``); FBGEMM CUDA only."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        sharding_type: Optional[Any] = None,
        backend_type: BackendType = BackendType.SSD,
    ) -> None:
        require_kv_backend(type(self).__name__, backend_type)
        super().__init__(config, pg, device, sharding_type)
        self._supports_vbe = True
        self._build_zero_collision(type(self).__name__, config, device, self._pooling_mode, pg, backend_type, False)

    def forward(  # type: ignore[override]
        self,
        features: Any,
        vbe_output: Optional[torch.Tensor] = None,
        vbe_output_offsets: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        self._reset_split_weights()
        return super().forward(features, vbe_output, vbe_output_offsets)


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ZeroCollisionKeyValueEmbedding(ZeroCollisionMethods, BaseBatchedEmbedding, FusedOptimizerModule):
    """Sequence zero-collision kernel (``ssd_virtual_table`` / ``dram_virtual_table``); FBGEMM CUDA only.

    Args:
        embedding_cache_mode: the table is a cache written with ``update`` (no backward); must equal
            ``config.enable_embedding_update``.
    """

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        backend_type: BackendType = BackendType.SSD,
        embedding_cache_mode: bool = False,
    ) -> None:
        from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

        require_kv_backend(type(self).__name__, backend_type)
        if embedding_cache_mode != config.enable_embedding_update:
            raise ValueError(
                f"embedding_cache_mode={embedding_cache_mode} but the config has "
                f"enable_embedding_update={config.enable_embedding_update}"
            )
        super().__init__(config, pg, device)
        self._build_zero_collision(
            type(self).__name__, config, device, PoolingMode.NONE, pg, backend_type, embedding_cache_mode
        )

    def forward(self, features: Any) -> torch.Tensor:
        self._reset_split_weights()
        check_features(features, self._layout, self._check_ids)
        indices, offsets = tbe_indices_offsets(features)
        return self._emb_module(indices=indices, offsets=offsets, weights=features.weights_or_none())


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ZeroCollisionEmbeddingCache(ZeroCollisionKeyValueEmbedding):
    """A zero-collision table used as a cache: looked up without gradients, written with ``update``."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        backend_type: BackendType = BackendType.SSD,
    ) -> None:
        super().__init__(config, pg, device, backend_type, True)

    def forward(self, features: Any) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(features)

    def update(self, embeddings: Any) -> None:
        """Writes rows: ``embeddings`` holds the ids as values and the rows as weights."""
        self._emb_module.direct_write_embedding(embeddings.values(), embeddings.offsets(), embeddings.weights())


@public_at("recsys_lib.distributed.batched_embedding_kernel")
class ZeroCollisionEmbeddingEnrichmentCache(ZeroCollisionKeyValueEmbedding):
    """A zero-collision cache filled by enrichment queries (``update`` asks the store for the ids' rows)."""

    def __init__(
        self,
        config: GroupedEmbeddingConfig,
        pg: Optional[ProcessGroup] = None,
        device: Optional[torch.device] = None,
        backend_type: BackendType = BackendType.SSD,
    ) -> None:
        super().__init__(config, pg, device, backend_type, True)

    def forward(self, features: Any) -> torch.Tensor:
        with torch.no_grad():
            return super().forward(features)

    def update(self, embeddings: Any) -> None:
        """Queries the enrichment source for the ids in ``embeddings``."""
        self._emb_module.enrichment_query_id(embeddings.values(), embeddings.offsets(), embeddings.weights())
