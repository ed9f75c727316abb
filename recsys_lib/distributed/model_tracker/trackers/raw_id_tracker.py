"""``RawIdTracker``: the raw (pre-remap) ids behind the rows that hash-ZCH tables look up, per batch
(``torchrec.distributed.model_tracker.trackers.raw_id_tracker``).

Every ``ShardedManagedCollisionCollection`` of the model reports, after each remap, the local rows of each table
and the identity (raw id) and runtime metadata stored at those rows (``register_post_lookup_tracker_fn``); the
tracker keeps them by batch in a :class:`RawIdTrackerStore`. The fused kernels of the sharded MC-EC/EBCs are its
consumers (``init_raw_id_tracker``; consumer name = the FBGEMM TBE's ``uuid``): each reads the raw ids of its
tables recorded since it last asked with ``get_indexed_lookups``::

    tracker = RawIdTracker(dmp._dmp_wrapped_module)          # or DMP(model_tracker_configs=ModelTrackerConfigs(
    for batch in data: dmp(batch) ...                        #     raw_id_tracker_config=RawIdTrackerConfig()))
    tracker.get_indexed_lookups(["t0"], consumer)            # {"t0": ([raw ids (N, 1) per batch], [meta ...])}

MCH tables keep no identity per row and are not reported (as in TorchRec).
"""

import logging
from collections import Counter, OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed._sharded.common import unwrap
from recsys_lib.distributed._sharded.table_types import ShardedEmbeddingTable
from recsys_lib.distributed.mc_embedding import ShardedManagedCollisionEmbeddingCollection
from recsys_lib.distributed.mc_embeddingbag import ShardedManagedCollisionEmbeddingBagCollection
from recsys_lib.distributed.mc_modules import ShardedManagedCollisionCollection
from recsys_lib.distributed.model_tracker.delta_store import RawIdTrackerStore
from recsys_lib.distributed.model_tracker.model_delta_tracker import clean_fqn, features_to_fqn, ModelDeltaTracker
from recsys_lib.distributed.model_tracker.types import UniqueRows
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

logger: logging.Logger = logging.getLogger(__name__)

SUPPORTED_TRACKING_MODULES = (ShardedManagedCollisionCollection,)
MANAGED_COLLISION_WRAPPER_MODULES = (
    ShardedManagedCollisionEmbeddingCollection,
    ShardedManagedCollisionEmbeddingBagCollection,
)


class RawIdTracker(ModelDeltaTracker):
    """Records hash-ZCH raw ids per table and batch (see the module docstring).

    Args:
        model: the sharded model (``DistributedModelParallel._dmp_wrapped_module``).
        delete_on_read: drop batches once every consumer has read them.
        fqns_to_skip: module-name segments (and table-name parts) not to track.
    """

    def __init__(self, model: nn.Module, delete_on_read: bool = True, fqns_to_skip: Iterable[str] = ()) -> None:
        self._model = model
        self._consumers: Optional[List[str]] = None
        self._delete_on_read = delete_on_read
        self._fqn_to_feature_map: Dict[str, List[str]] = {}
        self._fqns_to_skip: List[str] = list(fqns_to_skip)
        self.curr_batch_idx: int = 0
        self.curr_compact_index: int = 0
        self.tracked_modules: Dict[str, nn.Module] = {}
        self.table_to_fqn: Dict[str, str] = {}
        self.feature_to_fqn: Dict[str, str] = {}
        self.fqn_to_feature_names()
        self._validate_and_init_tracker_fns()
        self._init_tbe_tracker_wrapper(self._model)
        # after the kernels registered as consumers
        self.per_consumer_batch_idx: Dict[str, int] = {c: -1 for c in (self._consumers or [self.DEFAULT_CONSUMER])}
        self.store: RawIdTrackerStore = RawIdTrackerStore()
        self.feature_to_fqn.update(features_to_fqn(self._fqn_to_feature_map, "RawIdTracker"))

    def step(self) -> None:
        self.curr_batch_idx += 1

    def _should_skip_fqn(self, fqn: str) -> bool:
        parts = fqn.split(".")
        return any(skip in parts for skip in self._fqns_to_skip)

    def _should_track_table(self, embedding_tables: List[ShardedEmbeddingTable]) -> bool:
        return not any(skip in t.name for t in embedding_tables for skip in self._fqns_to_skip)

    def fqn_to_feature_names(self) -> Dict[str, List[str]]:
        """``{table fqn: feature names}`` of every table of a sharded MCC (computed once)."""
        if self._fqn_to_feature_map:
            return self._fqn_to_feature_map
        table_features: Dict[str, List[str]] = OrderedDict()
        for fqn, module in self._model.named_modules():
            if self._should_skip_fqn(fqn):
                continue
            if isinstance(module, SUPPORTED_TRACKING_MODULES):
                track = True
                for table, config in module._table_name_to_config.items():
                    if any(skip in table for skip in self._fqns_to_skip):
                        track = False
                    table_features[table] = list(config.feature_names)
                if track:
                    self.tracked_modules[self._clean_fqn_fn(fqn)] = module
            parts = fqn.split(".")
            for table in table_features:
                if table in parts:  # the last module path naming the table wins, as in TorchRec
                    self.table_to_fqn[table] = self._clean_fqn_fn(fqn)
        names = [n for ns in table_features.values() for n in ns]
        if len(set(names)) != len(names):
            logger.warning(f"RawIdTracker: duplicate feature names {[n for n, c in Counter(names).items() if c > 1]}")
        self._fqn_to_feature_map = OrderedDict(
            (self.table_to_fqn[t], f) for t, f in table_features.items() if t in self.table_to_fqn
        )
        return self._fqn_to_feature_map

    def record_lookup(self, kjt: KeyedJaggedTensor, states: torch.Tensor, emb_module: Optional[nn.Module] = None,
                      raw_ids: Optional[torch.Tensor] = None, runtime_meta: Optional[torch.Tensor] = None) -> None:
        """Record the rows of ``kjt`` (keys: table names) with their raw ids ``(N, ...)`` and runtime metadata.

        Skipped (logged) without raw ids, for an empty ``kjt``, or when ``raw_ids`` / ``runtime_meta`` do not hold
        a whole number of values per id.
        """
        n = kjt.values().numel()
        if raw_ids is None or n == 0:
            return
        if raw_ids.numel() % n != 0 or (runtime_meta is not None and runtime_meta.numel() % n != 0):
            logger.warning(f"RawIdTracker: skipping a lookup of {n} ids with raw ids {list(raw_ids.shape)} / runtime "
                           f"meta {None if runtime_meta is None else list(runtime_meta.shape)}")
            return
        raw_2d = raw_ids.view(n, -1)
        meta_2d = runtime_meta.view(n, -1) if runtime_meta is not None else None
        per_table: Dict[str, List[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]] = OrderedDict()
        start = 0
        values = kjt.values()
        for key, count in zip(kjt.keys(), kjt.length_per_key()):
            end = start + count
            meta = meta_2d[start:end] if meta_2d is not None else None
            per_table.setdefault(self.table_to_fqn[key], []).append((values[start:end], raw_2d[start:end], meta))
            start = end
        for fqn, parts in per_table.items():
            metas = [p[2] for p in parts if p[2] is not None]
            self.store.append(batch_idx=self.curr_batch_idx, fqn=fqn, ids=torch.cat([p[0] for p in parts]),
                              raw_ids=torch.cat([p[1] for p in parts]), runtime_meta=torch.cat(metas) if metas else None)

    def _clean_fqn_fn(self, fqn: str) -> str:
        return clean_fqn(fqn)

    def _validate_and_init_tracker_fns(self) -> None:
        for module in self.tracked_modules.values():
            module.register_post_lookup_tracker_fn(self.record_lookup)

    def _init_tbe_tracker_wrapper(self, module: nn.Module) -> None:
        """Connects the fused kernels of every sharded MC-EC/EBC; their TBE ``uuid`` s become the consumers."""
        for fqn, named in self._model.named_modules():
            if self._should_skip_fqn(fqn) or not isinstance(named, MANAGED_COLLISION_WRAPPER_MODULES):
                continue
            for lookup in named._embedding_module._lookups:
                for kernel in unwrap(lookup)._emb_modules:
                    if not self._should_track_table(kernel.config.embedding_tables):
                        continue
                    kernel.init_raw_id_tracker(self.get_indexed_lookups, self.delete)
                    if kernel._raw_id_tracker_wrapper is None:
                        continue  # not an FBGEMM training TBE (dense kernels): no consumer
                    if self._consumers is None:
                        self._consumers = []
                    self._consumers.append(kernel.emb_module.uuid)

    def get_unique_ids(self, consumer: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """Raw-id tracking keeps no unique rows: ``{}``."""
        return {}

    def get_unique(self, consumer: Optional[str] = None, top_percentage: Optional[float] = 1.0,
                   per_table_percentage: Optional[Dict[str, Tuple[float, str]]] = None,
                   sorted_by_indices: Optional[bool] = True) -> Dict[str, UniqueRows]:
        """Raw-id tracking keeps no unique rows: ``{}``."""
        return {}

    def clear(self, consumer: Optional[str] = None) -> None:
        """Nothing to clear per consumer (``delete`` drops batches)."""

    def get_indexed_lookups(
        self, tables: List[str], consumer: Optional[str] = None
    ) -> Dict[str, Tuple[List[torch.Tensor], List[torch.Tensor]]]:
        """``{table: (raw ids per batch, runtime meta per batch)}`` recorded since ``consumer`` last asked.

        Raises:
            ValueError: an unknown consumer.
        """
        consumer = consumer or self.DEFAULT_CONSUMER
        if consumer not in self.per_consumer_batch_idx:
            raise ValueError(f"RawIdTracker: unknown consumer {consumer!r}; known {list(self.per_consumer_batch_idx)}")
        end = self.curr_batch_idx + 1
        start = self.per_consumer_batch_idx[consumer]
        lookups = {}
        if start < end:
            self.per_consumer_batch_idx[consumer] = end
            lookups = self.store.get_indexed_lookups(start, end)
        out: Dict[str, Tuple[List[torch.Tensor], List[torch.Tensor]]] = {}
        for table in tables:
            fqn = self.table_to_fqn[table]
            raw = [lk.raw_ids for lk in lookups.get(fqn, []) if lk.raw_ids is not None]
            meta = [lk.runtime_meta for lk in lookups.get(fqn, []) if lk.runtime_meta is not None]
            if raw:
                out[table] = (raw, meta)
        if self._delete_on_read:
            self.store.delete(up_to_idx=min(self.per_consumer_batch_idx.values()))
        return out

    def delete(self, up_to_idx: Optional[int]) -> None:
        """Drops recorded batches before ``up_to_idx`` (all when None)."""
        self.store.delete(up_to_idx)
