"""``ModelDeltaTracker``: which rows of the sharded embedding tables were looked up since a consumer last asked
(``torchrec.distributed.model_tracker.model_delta_tracker``).

The tracker registers a post-lookup hook on every sharded EC/EBC of the model; each hook call records, per table,
the *local* rows this rank looked up (its shard's row ids, as the kernels see them) and, in ``EMBEDDING`` mode,
their embeddings. ``DistributedModelParallel.forward`` advances the batch index (``step``). A consumer's
``get_unique()`` returns the distinct rows of every batch since its previous call::

    tracker = dmp.init_torchrec_delta_tracker(DeltaTrackerConfig())
    for batch in data: dmp(batch) ...
    rows = tracker.get_unique_ids()   # {"sparse.ebc.embedding_bags.t0": tensor([0, 3, 4]), ...}

Modes: ``ID_ONLY`` (rows), ``EMBEDDING`` (rows + their embeddings before the interval, EC only),
``MOMENTUM_LAST`` (rows + the norm of each row's ``momentum1`` at its last lookup) and ``MOMENTUM_DIFF`` /
``ROWWISE_ADAGRAD`` (rows + how much each row's row-wise optimizer state grew over the interval: the state at the
row's first lookup is recorded, and ``get_unique`` subtracts it from the latest, ``get_latest()``). The
optimizer-state modes hook the lookups (``register_optim_state_tracker_fn``) and need fused kernels (in-backward
optimizer); each row's state is read from its own table's slice of the kernel's state (TorchRec indexes the
kernel's concatenated state with table-local rows, which is only right for a kernel's first table; see
``docs/deviations.md``).
"""

import abc
import logging
from collections import OrderedDict
from typing import Dict, Iterable, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.distributed.embedding import ShardedEmbeddingCollection
from recsys_lib.distributed.embeddingbag import ShardedEmbeddingBagCollection
from recsys_lib.optim.fused import FusedOptimizerModule
from recsys_lib.distributed.model_tracker.delta_store import DeltaStoreTrec
from recsys_lib.distributed._sharded.common import unwrap
from recsys_lib.distributed.model_tracker._optim_states import kernel_row_states, latest_states
from recsys_lib.distributed.model_tracker.types import TrackingMode, UniqueRows, UpdateMode
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

logger: logging.Logger = logging.getLogger(__name__)

UPDATE_MODE_MAP: Dict[TrackingMode, UpdateMode] = {
    TrackingMode.ID_ONLY: UpdateMode.NONE,
    TrackingMode.EMBEDDING: UpdateMode.FIRST,  # the value before this interval's updates: top-k of the change
    TrackingMode.MOMENTUM_LAST: UpdateMode.LAST,
    TrackingMode.MOMENTUM_DIFF: UpdateMode.FIRST,
    TrackingMode.ROWWISE_ADAGRAD: UpdateMode.FIRST,
}

SUPPORTED_MODULES = (ShardedEmbeddingCollection, ShardedEmbeddingBagCollection)
_LOOKUP_MODES = (TrackingMode.ID_ONLY, TrackingMode.EMBEDDING)
_DIFF_MODES = (TrackingMode.MOMENTUM_DIFF, TrackingMode.ROWWISE_ADAGRAD)
_WRAPPER_PREFIXES = ("_dmp_wrapped_module.module.", "module.")


def clean_fqn(fqn: str) -> str:
    """``fqn`` without the wrappers DMP adds (``_dmp_wrapped_module.module.``, ``module.``): state-dict names."""
    for prefix in _WRAPPER_PREFIXES:
        if fqn.startswith(prefix):
            return fqn[len(prefix):]
    return fqn


def features_to_fqn(fqn_to_feature_map: Dict[str, List[str]], owner: str) -> Dict[str, str]:
    """``{feature: table fqn}``; a feature read by several tables keeps the first (logged)."""
    out: Dict[str, str] = {}
    for fqn, features in fqn_to_feature_map.items():
        for feature in features:
            if feature in out:
                logger.warning(f"{owner}: feature {feature!r} of {fqn} already tracked; skipped")
                continue
            out[feature] = fqn
    return out


class ModelDeltaTracker(abc.ABC):
    """Interface of the trackers ``DistributedModelParallel`` holds."""

    DEFAULT_CONSUMER: str = "default"

    @abc.abstractmethod
    def record_lookup(self, kjt: KeyedJaggedTensor, states: torch.Tensor, emb_module: Optional[nn.Module] = None,
                      raw_ids: Optional[torch.Tensor] = None) -> None:
        """Record the ids of ``kjt`` (as looked up) and their states ``(N, D)``."""

    @abc.abstractmethod
    def get_unique_ids(self, consumer: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """``{table fqn: distinct local rows}`` since ``consumer``'s last read."""

    @abc.abstractmethod
    def get_unique(self, consumer: Optional[str] = None, top_percentage: Optional[float] = 1.0,
                   per_table_percentage: Optional[Dict[str, Tuple[float, str]]] = None,
                   sorted_by_indices: Optional[bool] = True) -> Dict[str, UniqueRows]:
        """``{table fqn: UniqueRows}`` since ``consumer``'s last read."""

    @abc.abstractmethod
    def clear(self, consumer: Optional[str] = None) -> None:
        """Forget tracked rows."""

    def step(self) -> None:
        """Advance the batch index (called by ``DistributedModelParallel.forward``)."""


class ModelDeltaTrackerTrec(ModelDeltaTracker):
    """Tracks the rows the sharded EC/EBCs of ``model`` look up (see the module docstring).

    Args:
        model: the (sharded) model, usually ``DistributedModelParallel._dmp_wrapped_module``.
        consumers: independent readers; default ``["default"]``.
        delete_on_read: drop rows once every consumer has read them.
        auto_compact: compact after every output dist instead of on read.
        mode: what to keep with each row (see the module docstring); ``EMBEDDING`` is EC only, the optimizer-state
            modes need fused kernels.
        fqns_to_skip: module name segments whose modules are not tracked.
    """

    def __init__(self, model: nn.Module, consumers: Optional[List[str]] = None, delete_on_read: bool = True,
                 auto_compact: bool = False, mode: TrackingMode = TrackingMode.ID_ONLY,
                 fqns_to_skip: Iterable[str] = ()) -> None:
        self._model = model
        self._consumers: List[str] = list(consumers or [self.DEFAULT_CONSUMER])
        self._delete_on_read = delete_on_read
        self._auto_compact = auto_compact
        self._mode = mode
        self._fqns_to_skip = list(fqns_to_skip)
        self._fqn_to_feature_map: Dict[str, List[str]] = {}
        self.per_consumer_batch_idx: Dict[str, int] = {c: -1 for c in self._consumers}
        self.curr_batch_idx: int = 0
        self.curr_compact_index: int = 0
        self.tracked_modules: Dict[str, nn.Module] = {}
        self.table_to_fqn: Dict[str, str] = {}
        self.feature_to_fqn: Dict[str, str] = {}
        self.fqn_to_feature_names()
        self._validate_and_init_tracker_fns()
        self.store: DeltaStoreTrec = DeltaStoreTrec(UPDATE_MODE_MAP[mode])
        self.feature_to_fqn.update(features_to_fqn(self._fqn_to_feature_map, "ModelDeltaTracker"))

    # ---- recording ----

    def step(self) -> None:
        self.curr_batch_idx += 1

    def trigger_compaction(self) -> None:
        """Compact the batches no consumer has read yet (``auto_compact``)."""
        if self.curr_compact_index >= self.curr_batch_idx:
            return
        start, end = max(self.per_consumer_batch_idx.values()), self.curr_batch_idx
        if start < end:
            self.compact(start_idx=start, end_idx=end)
            self.curr_compact_index = end

    def record_lookup(self, kjt: KeyedJaggedTensor, states: torch.Tensor, emb_module: Optional[nn.Module] = None,
                      raw_ids: Optional[torch.Tensor] = None) -> None:
        if self._mode == TrackingMode.ID_ONLY:
            self.record_ids(kjt)
        elif self._mode == TrackingMode.EMBEDDING:
            self.record_embeddings(kjt, states)
        elif self._mode == TrackingMode.MOMENTUM_LAST:
            assert emb_module is not None, "MOMENTUM_LAST records from a lookup's kernel"
            self.record_momentum(emb_module, kjt)
        else:
            assert emb_module is not None, f"{self._mode} records from a lookup's kernel"
            self.record_rowwise_optim_state(emb_module, kjt)

    def _per_table(self, kjt: KeyedJaggedTensor) -> Dict[str, List[Tuple[int, int]]]:
        """``{table fqn: [(start, end) of each of its features' values]}``."""
        spans: Dict[str, List[Tuple[int, int]]] = OrderedDict()
        start = 0
        for key, n in zip(kjt.keys(), kjt.length_per_key()):
            spans.setdefault(self.feature_to_fqn[key], []).append((start, start + n))
            start += n
        return spans

    def record_ids(self, kjt: KeyedJaggedTensor) -> None:
        """Record the ids of ``kjt`` per table."""
        values = kjt.values()
        for fqn, spans in self._per_table(kjt).items():
            ids = torch.cat([values[a:b] for a, b in spans])
            self.store.append(batch_idx=self.curr_batch_idx, fqn=fqn, ids=ids, states=None)

    def record_embeddings(self, kjt: KeyedJaggedTensor, embeddings: torch.Tensor) -> None:
        """Record the ids of ``kjt`` with their embeddings ``(N, D)`` per table."""
        n = kjt.values().numel()
        if n > 0 and embeddings.numel() % n != 0:
            raise ValueError(f"ModelDeltaTracker: {n} ids but embeddings of {embeddings.numel()} elements")
        rows = embeddings.detach().reshape(n, -1) if n > 0 else embeddings.detach().reshape(0, 0)
        values = kjt.values()
        for fqn, spans in self._per_table(kjt).items():
            ids = torch.cat([values[a:b] for a, b in spans])
            states = torch.cat([rows[a:b] for a, b in spans])
            self.store.append(batch_idx=self.curr_batch_idx, fqn=fqn, ids=ids, states=states)

    def record_momentum(self, emb_module: nn.Module, kjt: KeyedJaggedTensor) -> None:
        """Record the ids of ``kjt`` with the norm of each row's ``momentum1`` (``(N,)``) in ``emb_module``."""
        self._record_states(kjt, kernel_row_states(emb_module, kjt, norm=True))

    def record_rowwise_optim_state(self, emb_module: nn.Module, kjt: KeyedJaggedTensor) -> None:
        """Record the ids of ``kjt`` with each row's row-wise optimizer state (``(N,)``) in ``emb_module``."""
        self._record_states(kjt, kernel_row_states(emb_module, kjt, norm=False))

    def _record_states(self, kjt: KeyedJaggedTensor, states: torch.Tensor) -> None:
        values = kjt.values()
        start = 0
        for key, n in zip(kjt.keys(), kjt.length_per_key()):
            self.store.append(batch_idx=self.curr_batch_idx, fqn=self.feature_to_fqn[key],
                              ids=values[start:start + n], states=states[start:start + n])
            start += n

    def get_latest(self) -> Dict[str, torch.Tensor]:
        """``{table fqn: the table's row-wise optimizer state now, (local rows,)}`` of every tracked fused kernel."""
        kernels = [k for m in self.tracked_modules.values() for lookup in m._lookups
                   if not isinstance(lookup, nn.parallel.DistributedDataParallel) for k in unwrap(lookup)._emb_modules]
        return latest_states(kernels, self.table_to_fqn)

    # ---- reading ----

    def get_unique_ids(self, consumer: Optional[str] = None) -> Dict[str, torch.Tensor]:
        return {fqn: rows.ids for fqn, rows in self.get_unique(consumer).items()}

    def get_unique(self, consumer: Optional[str] = None, top_percentage: Optional[float] = 1.0,
                   per_table_percentage: Optional[Dict[str, Tuple[float, str]]] = None,
                   sorted_by_indices: Optional[bool] = True) -> Dict[str, UniqueRows]:
        consumer = consumer or self.DEFAULT_CONSUMER
        if consumer not in self.per_consumer_batch_idx:
            raise ValueError(f"ModelDeltaTracker: unknown consumer {consumer!r}; known {list(self.per_consumer_batch_idx)}")
        end = self.curr_batch_idx + 1
        start = max(self.per_consumer_batch_idx.values())
        if start < end:
            self.compact(start, end)
        rows = self.store.get_unique(from_idx=self.per_consumer_batch_idx[consumer])
        self.per_consumer_batch_idx[consumer] = end
        if self._delete_on_read:
            self.store.delete(up_to_idx=min(self.per_consumer_batch_idx.values()))
        if self._mode in _DIFF_MODES:  # growth over the interval: latest state minus the one first recorded
            latest = self.get_latest()
            for fqn, unique in rows.items():
                if fqn not in latest:
                    raise KeyError(f"ModelDeltaTracker: no optimizer state for {fqn!r}; have {list(latest)}")
                assert unique.states is not None
                unique.states = latest[fqn][unique.ids] - unique.states
        return rows

    def get_tracked_modules(self) -> Dict[str, nn.Module]:
        return self.tracked_modules

    def clear(self, consumer: Optional[str] = None) -> None:
        if consumer is not None and consumer not in self.per_consumer_batch_idx:
            raise ValueError(f"ModelDeltaTracker: unknown consumer {consumer!r}")
        if consumer is None or len(self.per_consumer_batch_idx) == 1:
            self.store.delete()

    def compact(self, start_idx: int, end_idx: int) -> None:
        self.store.compact(start_idx, end_idx)

    # ---- discovery ----

    def fqn_to_feature_names(self) -> Dict[str, List[str]]:
        """``{table fqn: feature names}`` of every supported module of the model (computed once)."""
        if self._fqn_to_feature_map:
            return self._fqn_to_feature_map
        table_features: Dict[str, List[str]] = OrderedDict()
        module_prefixes: List[Tuple[str, List[str]]] = []
        for fqn, module in self._model.named_modules():
            if any(skip in fqn.split(".") for skip in self._fqns_to_skip):
                continue
            if isinstance(module, SUPPORTED_MODULES):
                tables = list(module._table_name_to_config)
                for table, config in module._table_name_to_config.items():
                    table_features[table] = list(config.feature_names)
                self.tracked_modules[self._clean_fqn_fn(fqn)] = module
                module_prefixes.append((fqn + "." if fqn else "", tables))
                continue
            for prefix, tables in module_prefixes:
                if not fqn.startswith(prefix):
                    continue
                for table in tables:
                    if fqn.split(".")[-1] == table:
                        self.table_to_fqn[table] = self._clean_fqn_fn(fqn)
        self._fqn_to_feature_map = OrderedDict(
            (self.table_to_fqn[t], f) for t, f in table_features.items() if t in self.table_to_fqn
        )
        return self._fqn_to_feature_map

    def _clean_fqn_fn(self, fqn: str) -> str:
        return clean_fqn(fqn)

    def _validate_and_init_tracker_fns(self) -> None:
        for module in self.tracked_modules.values():
            if isinstance(module, ShardedEmbeddingBagCollection) and self._mode == TrackingMode.EMBEDDING:
                raise ValueError("ModelDeltaTracker: an EBC's lookup returns pooled sums, not per-id embeddings; "
                                 "track it with TrackingMode.ID_ONLY")
            if self._mode in _LOOKUP_MODES:
                module.register_post_lookup_tracker_fn(self.record_lookup)
            else:
                for lookup in module._lookups:
                    if isinstance(lookup, nn.parallel.DistributedDataParallel):
                        continue  # data-parallel tables: no fused optimizer state to read
                    for kernel in lookup._emb_modules:
                        if not isinstance(kernel, FusedOptimizerModule):
                            raise ValueError(
                                f"ModelDeltaTracker: {self._mode} reads the fused optimizer state of the looked-up "
                                f"rows, but tables {kernel.config.table_names()} use a {type(kernel).__name__} kernel "
                                "without one; shard them with a fused compute kernel"
                            )
                    lookup.register_optim_state_tracker_fn(self.record_lookup)
            if self._auto_compact:
                module.register_post_odist_tracker_fn(self.trigger_compaction)
