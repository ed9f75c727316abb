"""``MCHManagedCollisionModule``: managed-collision hash over a sorted id table (public path ``mc_modules``).

State of a table with ``Z = zch_size`` rows (all int64, all in the state dict)::

    _mch_sorted_raw_ids       (Z,)  raw ids, ascending; empty slots hold 2**63-1 (sorted last)
    _mch_remapped_ids_mapping (Z,)  row of each raw id (a permutation of [offset, offset + Z))
    _mch_<field>              (Z,)  eviction metadata per slot (counts / last_access_iter)
    _current_iter_tensor      (1,)  training iterations seen

The last sorted position always holds an empty-slot sentinel pinned by the policy, so ``Z - 1`` rows hold ids
and row ``offset + Z - 1`` is where every unknown id goes. Remap reads a bucket directory derived from the sorted
ids (``_mch_index.py``: two independent gathers per id instead of a binary search) when the table is large and
reused, else one ``searchsorted`` plus one fused gather/select (no boolean-mask scatter).
"""

import logging
from typing import Callable, Dict, List, Optional, Tuple

import torch

from recsys_lib._public import public_at

from recsys_lib.modules._mc_base import ManagedCollisionModule
from recsys_lib.modules._mc_eviction import _INT64_MAX, MCHEvictionPolicy
from recsys_lib.modules._mch_index import (
    build_directory,
    remap_with_directory,
    SortedIdDirectory,
    table_key,
    worth_building,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor
from recsys_lib._public import public_at

logger: logging.Logger = logging.getLogger(__name__)


def _jt_like(feature: JaggedTensor, values: torch.Tensor) -> JaggedTensor:
    # new values, same jagged layout; offsets only if the input had them (no cumsum forced here)
    return JaggedTensor(
        values=values,
        lengths=feature.lengths_or_none(),
        offsets=feature.offsets_or_none(),
        weights=feature.weights_or_none(),
    )


def _lookup_sorted(
    sorted_raw_ids: torch.Tensor, remapped_ids_mapping: torch.Tensor, values: torch.Tensor, miss: int
) -> torch.Tensor:
    """Rows of ``values`` (N,) in a sorted table (Z,); ids not in the table get ``miss``."""
    ids = values if values.dtype == torch.int64 else values.to(torch.int64)
    pos = torch.searchsorted(sorted_raw_ids[:-1], ids)  # (N,) in [0, Z-1]: the last slot is the sentinel
    found = (sorted_raw_ids[pos] == ids) & (ids != _INT64_MAX)  # 2**63-1 marks free slots, never an id
    rows = torch.where(found, remapped_ids_mapping[pos], miss)
    return rows if rows.dtype == values.dtype else rows.to(values.dtype)


@torch.fx.wrap
def _mch_remap(
    features: Dict[str, JaggedTensor],
    mch_sorted_raw_ids: torch.Tensor,
    mch_remapped_ids_mapping: torch.Tensor,
    zch_index: int,
) -> Dict[str, JaggedTensor]:
    """Remap every feature's ids through the sorted table; unknown ids go to row ``zch_index``.

    Args:
        features: ``{name: JaggedTensor}`` of raw ids, values ``(N,)``.
        mch_sorted_raw_ids: ``(Z,)`` ascending raw ids.
        mch_remapped_ids_mapping: ``(Z,)`` row of each.
        zch_index: the miss row.

    Returns:
        ``{name: JaggedTensor}`` of rows, same lengths / offsets / weights.
    """
    out: Dict[str, JaggedTensor] = {}
    for name, feature in features.items():
        out[name] = _jt_like(
            feature, _lookup_sorted(mch_sorted_raw_ids, mch_remapped_ids_mapping, feature.values(), zch_index)
        )
    return out


@public_at("recsys_lib.modules.mc_modules")
class MCHManagedCollisionModule(ManagedCollisionModule):
    """Managed-collision hash: raw ids get their own row while they score high enough under an eviction policy.

    Args:
        zch_size: ``Z``, rows of the table (``Z - 1`` for ids, the last for misses); must be >= 1.
        device: buffer device.
        eviction_policy: an ``MCHEvictionPolicy`` (LFU, LRU, distance-LFU).
        eviction_interval: training batches between two eviction rounds (>= 1).
        input_hash_size: raw id range passed to ``input_hash_func``.
        input_hash_func: optional ``(values, input_hash_size) -> values`` applied first.
        mch_size: deprecated, ignored (a warning is logged).
        mch_hash_func: deprecated, ignored.
        name: table name (logs).
        output_global_offset: first output row (row-wise shards).
        output_segments: output range boundaries; default ``[offset, offset + Z]``.
        buckets: number of uniform buckets for resharding.

    Example::

        mc = MCHManagedCollisionModule(zch_size=4, device=torch.device("cpu"),
                                       eviction_policy=LFU_EvictionPolicy(), eviction_interval=1)
        # batch 1: ids 7, 7, 9 are admitted (rows 0..2 in score order); 10**15 was never seen -> miss row 3
        rows = mc({"t": JaggedTensor(values=torch.tensor([7, 7, 9]), lengths=torch.tensor([3]))})
    """

    _mch_sorted_raw_ids: torch.Tensor
    _mch_remapped_ids_mapping: torch.Tensor

    def __init__(
        self,
        zch_size: int,
        device: torch.device,
        eviction_policy: MCHEvictionPolicy,
        eviction_interval: int,
        input_hash_size: int = (2**63) - 1,
        input_hash_func: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
        mch_size: Optional[int] = None,
        mch_hash_func: Optional[Callable[[torch.Tensor, int], torch.Tensor]] = None,
        name: Optional[str] = None,
        output_global_offset: int = 0,
        output_segments: Optional[List[int]] = None,
        buckets: int = 1,
    ) -> None:
        if not isinstance(zch_size, int) or zch_size < 1:
            raise ValueError(f"MCHManagedCollisionModule({name!r}): zch_size must be an int >= 1, got {zch_size!r}")
        if not isinstance(eviction_interval, int) or eviction_interval < 1:
            raise ValueError(
                f"MCHManagedCollisionModule({name!r}): eviction_interval must be an int >= 1, got {eviction_interval!r}"
            )
        if output_segments is None:
            output_segments = [output_global_offset, output_global_offset + zch_size]
        super().__init__(device=device, output_segments=output_segments)
        if mch_size is not None or mch_hash_func is not None:
            logger.warning("MCHManagedCollisionModule: mch_size / mch_hash_func are deprecated and ignored")
        self._init_output_segments_tensor: torch.Tensor = self._output_segments_tensor
        self._name = name
        self._input_hash_size = input_hash_size
        self._input_hash_func = input_hash_func
        self._zch_size: int = zch_size
        self._output_global_offset: int = output_global_offset
        self._eviction_interval = eviction_interval
        self._eviction_policy = eviction_policy
        self._buckets = buckets
        self._current_iter: int = -1  # read from _current_iter_tensor on the first training batch
        self._last_eviction_iter: int = -1
        self._evicted: bool = False
        self._evicted_emb_indices: torch.Tensor = torch.empty((0,), dtype=torch.int64, device=device)
        # ids (and per-occurrence policy metadata) of the batches since the last round: one tensor per batch
        self._history_ids: List[torch.Tensor] = []
        self._history_meta: List[Dict[str, torch.Tensor]] = []
        self._mch_metadata: Dict[str, torch.Tensor] = {}
        # remap directory derived from the sorted buffers (not state): rebuilt when they change
        self._remap_directory: Optional[SortedIdDirectory] = None
        self._last_remap_key: Tuple[int, int, int, int] = (-1, -1, -1, -1)
        self._init_buffers()
        self._init_metadata_buffers()

    def _init_buffers(self) -> None:
        z, dev = self._zch_size, self.device
        self.register_buffer("_mch_sorted_raw_ids", torch.full((z,), _INT64_MAX, dtype=torch.int64, device=dev))
        self.register_buffer("_mch_slots", torch.tensor([z - 1], dtype=torch.int64, device=dev), persistent=False)
        self.register_buffer("_delimiter", torch.tensor([_INT64_MAX], dtype=torch.int64, device=dev), persistent=False)
        start = self._output_global_offset
        self.register_buffer(
            "_mch_remapped_ids_mapping", torch.arange(start, start + z, dtype=torch.int64, device=dev)
        )

    def _init_metadata_buffers(self) -> None:
        for name, is_mch, _is_history in self._eviction_policy.metadata_info:
            if is_mch:
                self.register_buffer(
                    "_mch_" + name, torch.zeros((self._zch_size,), dtype=torch.int64, device=self.device)
                )
                self._mch_metadata[name] = getattr(self, "_mch_" + name)

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        # .to() / .cuda() replace buffers: keep the metadata dict pointing at the module's own buffers
        result = super()._apply(fn, recurse)
        for name in list(self._mch_metadata):
            self._mch_metadata[name] = getattr(self, "_mch_" + name)
        return result

    def preprocess(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        if self._input_hash_func is None:
            return features
        return {
            name: _jt_like(f, self._input_hash_func(f.values(), self._input_hash_size)) for name, f in features.items()
        }

    def reset_inference_mode(self) -> None:
        self._evicted = False
        self._last_eviction_iter = -1

    @torch.no_grad()
    def _match_indices(
        self, sorted_sequence: torch.Tensor, search_values: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(found (N,) bool, positions of the found ids (#found,))`` of ``search_values`` in a sorted table."""
        pos = torch.searchsorted(sorted_sequence[:-1], search_values)
        found = sorted_sequence[pos] == search_values
        return found, pos[found]

    @torch.no_grad()
    def _sort_mch_buffers(self) -> None:
        order = torch.argsort(self._mch_sorted_raw_ids, stable=True)
        self._mch_sorted_raw_ids.copy_(self._mch_sorted_raw_ids[order])
        self._mch_remapped_ids_mapping.copy_(self._mch_remapped_ids_mapping[order])
        for buf in self._mch_metadata.values():
            buf.copy_(buf[order])

    @torch.no_grad()
    def _update_and_evict(
        self, uniq_ids: torch.Tensor, uniq_ids_counts: torch.Tensor, uniq_ids_metadata: Dict[str, torch.Tensor]
    ) -> None:
        by_count = torch.argsort(uniq_ids_counts, descending=True, stable=True)
        ids, counts = uniq_ids[by_count], uniq_ids_counts[by_count]
        found, positions = self._match_indices(self._mch_sorted_raw_ids, ids)
        new_ids = ids[~found]
        evicted, admitted = self._eviction_policy.update_metadata_and_generate_eviction_scores(
            self._current_iter, self._zch_size, by_count, counts, found, positions, self._mch_metadata,
            uniq_ids_metadata,
        )
        self._mch_sorted_raw_ids[evicted] = new_ids[admitted]
        rows = self._mch_remapped_ids_mapping[evicted]
        self._evicted_emb_indices = torch.unique(torch.cat([self._evicted_emb_indices, rows])) if self._evicted else rows
        self._evicted = True
        self._sort_mch_buffers()

    @torch.no_grad()
    def _coalesce_history(self) -> None:
        if len(self._history_ids) == 0:
            return
        history = torch.cat(self._history_ids)
        meta = {name: torch.cat([m[name] for m in self._history_meta]) for name in self._history_meta[0]}
        self._history_ids, self._history_meta = [], []
        uniq_ids, inverse, counts = torch.unique(history, return_inverse=True, return_counts=True)
        policy = self._eviction_policy
        mask: Optional[torch.Tensor] = None
        if policy._threshold_filtering_func is not None:
            mask, _ = policy._threshold_filtering_func(counts)
        coalesced = policy.coalesce_history_metadata(self._current_iter, meta, counts, inverse, threshold_mask=mask)
        if mask is not None:
            uniq_ids, counts = uniq_ids[mask], counts[mask]
        self._update_and_evict(uniq_ids, counts, coalesced)

    def _check_raw_ids(self, values: torch.Tensor) -> None:
        # 2**63-1 marks an empty slot: as an id it would alias every free row (TorchRec maps it silently)
        if values.numel() > 0 and bool((values == _INT64_MAX).any()):
            raise ValueError(
                f"MCHManagedCollisionModule({self._name!r}): raw id 2**63-1 is reserved for empty slots"
            )

    def profile(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        if not self.training:
            return features
        if self._current_iter == -1:
            self._current_iter = int(self._current_iter_tensor.item())
            self._last_eviction_iter = self._current_iter
        self._current_iter += 1
        self._current_iter_tensor.data += 1
        history_fields = [m.metadata_name for m in self._eviction_policy.metadata_info if m.is_history_metadata]
        for feature in features.values():
            values = feature.values().to(torch.int64)
            self._check_raw_ids(values)
            meta = {name: torch.empty_like(values) for name in history_fields}
            self._eviction_policy.record_history_metadata(self._current_iter, values, meta)
            self._history_ids.append(values)
            self._history_meta.append(meta)
        if self._current_iter - self._last_eviction_iter == self._eviction_interval:
            self._coalesce_history()
            self._last_eviction_iter = self._current_iter
        return features

    def remap(
        self,
        features: Dict[str, JaggedTensor],
        mutate_miss_lengths: bool = True,
        write_weights: Optional[torch.Tensor] = None,
    ) -> Dict[str, JaggedTensor]:
        miss = self._output_global_offset + self._zch_size - 1
        directory = self._directory_for(features)
        if directory is None:
            return _mch_remap(features, self._mch_sorted_raw_ids, self._mch_remapped_ids_mapping, miss)
        out: Dict[str, JaggedTensor] = {}
        for name, feature in features.items():
            values = feature.values()
            rows = remap_with_directory(
                self._mch_sorted_raw_ids, self._mch_remapped_ids_mapping, directory, values.to(torch.int64), miss
            )
            out[name] = _jt_like(feature, rows if rows.dtype == values.dtype else rows.to(values.dtype))
        return out

    def _directory_for(self, features: Dict[str, JaggedTensor]) -> Optional[SortedIdDirectory]:
        key = table_key(self._mch_sorted_raw_ids, self._mch_remapped_ids_mapping)
        directory = self._remap_directory
        if directory is not None and directory.key == key:
            return directory
        self._remap_directory = None
        batch_ids = sum(f.values().numel() for f in features.values())
        if worth_building(self._zch_size, batch_ids, seen_before=self._last_remap_key == key):
            self._remap_directory = build_directory(self._mch_sorted_raw_ids, self._mch_remapped_ids_mapping)
        self._last_remap_key = key
        return self._remap_directory

    def forward(
        self,
        features: Dict[str, JaggedTensor],
        mutate_miss_lengths: bool = True,
    ) -> Dict[str, JaggedTensor]:
        """Args: features ``{table: JaggedTensor}`` of raw ids. Returns: the same of rows in ``[offset, offset+Z)``."""
        return self.remap(self.profile(self.preprocess(features)))

    def output_size(self) -> int:
        return self._zch_size

    def buckets(self) -> int:
        return self._buckets

    def input_size(self) -> int:
        return self._input_hash_size

    def open_slots(self) -> torch.Tensor:
        return self._mch_slots - torch.searchsorted(self._mch_sorted_raw_ids, self._delimiter)

    @torch.no_grad()
    def evict(self) -> Optional[torch.Tensor]:
        if not self._evicted:
            return None
        self._evicted = False
        return self._evicted_emb_indices

    def validate_state(self) -> None:
        start = self._output_global_offset
        end = start + self._zch_size
        segments = self._output_segments_tensor
        if not (bool((segments == start).any()) and bool((segments == end).any())):
            raise ValueError(
                f"MCHManagedCollisionModule({self._name!r}): rows [{start}, {end}) cannot be built from the loaded "
                f"output segments {segments[segments >= 0].tolist()}"
            )
        self._output_segments_tensor = self._init_output_segments_tensor
        self._sort_mch_buffers()

    def rebuild_with_output_id_range(
        self,
        output_id_range: Tuple[int, int],
        output_segments: List[int],
        device: Optional[torch.device] = None,
    ) -> "MCHManagedCollisionModule":
        return type(self)(
            name=self._name,
            zch_size=output_id_range[1] - output_id_range[0],
            device=device or self.device,
            eviction_policy=self._eviction_policy,
            eviction_interval=self._eviction_interval,
            input_hash_size=self._input_hash_size,
            input_hash_func=self._input_hash_func,
            output_global_offset=output_id_range[0],
            output_segments=output_segments,
            buckets=len(output_segments) - 1,
        )
