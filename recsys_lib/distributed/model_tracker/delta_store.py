"""``DeltaStore``: per-table lookups recorded by batch, compacted to distinct rows on demand
(``torchrec.distributed.model_tracker.delta_store``).

Each table (by module fqn) keeps a list of :class:`IndexedLookup` in batch order. ``compact(start, end)`` merges
the lookups of batches ``[start, end)`` into one entry (distinct ids; with states, the first or last state of each
id by ``UpdateMode``); ``get_unique(from_idx)`` returns the distinct rows of every batch ``>= from_idx``.
"""

import abc
from bisect import bisect_left
from typing import Any, Dict, List, Optional

import torch

from recsys_lib.distributed.model_tracker.types import IndexedLookup, RawIndexedLookup, UniqueRows, UpdateMode


def _compute_unique_rows(ids: List[torch.Tensor], states: Optional[List[torch.Tensor]], mode: UpdateMode) -> UniqueRows:
    """Distinct ids of ``ids`` and, unless ``NONE``, the state of each id's first (``FIRST``) or last (``LAST``)
    occurrence."""
    if mode == UpdateMode.NONE:
        if states is not None:
            raise ValueError("DeltaStore: UpdateMode.NONE keeps no states, but states were recorded")
        return UniqueRows(ids=torch.cat(ids).unique(), states=None)
    if states is None:
        raise ValueError(f"DeltaStore: {mode} keeps states, but none were recorded")
    cat_ids, cat_states = torch.cat(ids), torch.cat(states)
    if mode == UpdateMode.LAST:
        cat_ids, cat_states = cat_ids.flip(0), cat_states.flip(0)
    unique, inverse = cat_ids.unique(return_inverse=True)
    positions = torch.arange(cat_ids.numel(), device=cat_ids.device)
    first = torch.full((unique.numel(),), cat_ids.numel(), dtype=torch.int64, device=cat_ids.device)
    first = first.scatter_reduce(0, inverse, positions, reduce="amin")
    return UniqueRows(ids=unique, states=cat_states[first])


def _drop_before(per_fqn_lookups: Dict[str, List[Any]], up_to_idx: Optional[int]) -> Dict[str, List[Any]]:
    """The lookups of batches ``>= up_to_idx`` per table (none when ``up_to_idx`` is None)."""
    if up_to_idx is None:
        return {}
    return {fqn: [lk for lk in lookups if lk.batch_idx >= up_to_idx] for fqn, lookups in per_fqn_lookups.items()}


def _batches_in(per_fqn_lookups: Dict[str, List[Any]], start_idx: int, end_idx: int) -> Dict[str, List[Any]]:
    """The lookups of batches ``[start_idx, end_idx)`` per table (lookups are kept in batch order)."""
    out: Dict[str, List[Any]] = {}
    for fqn, lookups in per_fqn_lookups.items():
        indices = [lk.batch_idx for lk in lookups]
        out[fqn] = lookups[bisect_left(indices, start_idx):bisect_left(indices, end_idx)]
    return out


class DeltaStore(abc.ABC):
    """Interface of a store of per-batch lookups (see the module docstring)."""

    @abc.abstractmethod
    def __init__(self, updateMode: UpdateMode = UpdateMode.NONE) -> None:
        pass

    @abc.abstractmethod
    def append(self, batch_idx: int, fqn: str, ids: torch.Tensor, states: Optional[torch.Tensor] = None,
               raw_ids: Optional[torch.Tensor] = None, runtime_meta: Optional[torch.Tensor] = None) -> None:
        """Record one batch's ids ``(N,)`` (and states ``(N, D)``) of table ``fqn``."""

    @abc.abstractmethod
    def delete(self, up_to_idx: Optional[int] = None) -> None:
        """Drop the lookups of batches ``< up_to_idx`` (all without an index)."""

    @abc.abstractmethod
    def compact(self, start_idx: int, end_idx: int) -> None:
        """Merge the lookups of batches ``[start_idx, end_idx)`` per table."""

    @abc.abstractmethod
    def get_unique(self, from_idx: int = 0) -> Dict[str, UniqueRows]:
        """Distinct rows per table of the batches ``>= from_idx``."""


class DeltaStoreTrec(DeltaStore):
    """In-memory ``DeltaStore`` used by ``ModelDeltaTrackerTrec``.

    Args:
        updateMode: which state to keep for repeated ids.
    """

    def __init__(self, updateMode: UpdateMode = UpdateMode.NONE) -> None:
        super().__init__(updateMode)
        self.updateMode = updateMode
        self.per_fqn_lookups: Dict[str, List[IndexedLookup]] = {}

    def append(self, batch_idx: int, fqn: str, ids: torch.Tensor, states: Optional[torch.Tensor] = None,
               raw_ids: Optional[torch.Tensor] = None, runtime_meta: Optional[torch.Tensor] = None) -> None:
        self.per_fqn_lookups.setdefault(fqn, []).append(IndexedLookup(batch_idx=batch_idx, ids=ids, states=states))

    def delete(self, up_to_idx: Optional[int] = None) -> None:
        self.per_fqn_lookups = _drop_before(self.per_fqn_lookups, up_to_idx)

    def _range(self, lookups: List[IndexedLookup], start_idx: int, end_idx: int) -> range:
        indices = [lk.batch_idx for lk in lookups]
        return range(bisect_left(indices, start_idx), bisect_left(indices, end_idx))

    def compact(self, start_idx: int, end_idx: int) -> None:
        if start_idx >= end_idx:
            raise ValueError(f"DeltaStore.compact: start_idx {start_idx} must be smaller than end_idx {end_idx}")
        for fqn, lookups in list(self.per_fqn_lookups.items()):
            span = self._range(lookups, start_idx, end_idx)
            if len(span) <= 1:
                continue
            part = lookups[span.start:span.stop]
            states = None if self.updateMode == UpdateMode.NONE else [_states(lk) for lk in part]
            rows = _compute_unique_rows([lk.ids for lk in part], states, self.updateMode)
            merged = IndexedLookup(batch_idx=start_idx, ids=rows.ids, states=rows.states, compact=True)
            self.per_fqn_lookups[fqn] = lookups[:span.start] + [merged] + lookups[span.stop:]

    def get_indexed_lookups(self, start_idx: int, end_idx: int) -> Dict[str, List[IndexedLookup]]:
        """The recorded lookups of batches ``[start_idx, end_idx)`` per table."""
        return _batches_in(self.per_fqn_lookups, start_idx, end_idx)

    def get_unique(self, from_idx: int = 0) -> Dict[str, UniqueRows]:
        out: Dict[str, UniqueRows] = {}
        for fqn, lookups in self.per_fqn_lookups.items():
            part = [lk for lk in lookups if lk.batch_idx >= from_idx]
            if not part:
                out[fqn] = UniqueRows(ids=torch.empty((0,), dtype=torch.int64), states=None)
                continue
            ids = [lk.ids for lk in part]
            states = None if self.updateMode == UpdateMode.NONE else [_states(lk) for lk in part]
            out[fqn] = _compute_unique_rows(ids, states, self.updateMode)
        return out


class RawIdTrackerStore(DeltaStore):
    """The ``RawIdTracker``'s store: per table, each batch's looked-up rows with their raw ids and runtime
    metadata (:class:`RawIndexedLookup`), kept as recorded (no compaction, no unique rows).

    Args:
        updateMode: kept for the ``DeltaStore`` interface (raw ids keep no states).
    """

    def __init__(self, updateMode: UpdateMode = UpdateMode.NONE) -> None:
        super().__init__(updateMode)
        self.updateMode = updateMode
        self.per_fqn_lookups: Dict[str, List[RawIndexedLookup]] = {}

    def append(self, batch_idx: int, fqn: str, ids: torch.Tensor, states: Optional[torch.Tensor] = None,
               raw_ids: Optional[torch.Tensor] = None, runtime_meta: Optional[torch.Tensor] = None) -> None:
        self.per_fqn_lookups.setdefault(fqn, []).append(
            RawIndexedLookup(batch_idx=batch_idx, ids=ids, raw_ids=raw_ids, runtime_meta=runtime_meta)
        )

    def delete(self, up_to_idx: Optional[int] = None) -> None:
        """Drops every batch before ``up_to_idx`` (all of them when None)."""
        self.per_fqn_lookups = _drop_before(self.per_fqn_lookups, up_to_idx)

    def compact(self, start_idx: int, end_idx: int) -> None:
        """Raw ids are kept per batch: nothing to merge."""

    def get_indexed_lookups(self, start_idx: int, end_idx: int) -> Dict[str, List[RawIndexedLookup]]:
        """The recorded lookups of batches ``[start_idx, end_idx)`` per table."""
        return _batches_in(self.per_fqn_lookups, start_idx, end_idx)

    def get_unique(self, from_idx: int = 0) -> Dict[str, UniqueRows]:
        """Raw-id tracking keeps no unique rows: ``{}``."""
        return {}


def _states(lookup: IndexedLookup) -> torch.Tensor:
    if lookup.states is None:
        raise ValueError(f"DeltaStore: batch {lookup.batch_idx} was recorded without states")
    return lookup.states
