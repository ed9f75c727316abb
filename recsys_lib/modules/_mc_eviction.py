"""Eviction policies and admission filters of the managed-collision hash (MCH).

Public path: ``recsys_lib.modules.mc_modules`` (TorchRec's). An MCH table keeps ``Z`` raw ids sorted
(``_mch_sorted_raw_ids``) with one metadata buffer per policy field (``_mch_counts``,
``_mch_last_access_iter``); every ``eviction_interval`` training batches the ids seen since the last round are
coalesced (unique ids + counts + per-id history metadata) and a policy scores table and incoming ids together:

=======================  ==============================================  ===============================
policy                   score (higher stays)                            metadata buffers
=======================  ==============================================  ===============================
``LFU_EvictionPolicy``   ``counts`` (running total since admission)      ``counts``
``LRU_EvictionPolicy``   ``-(it - last_access + 1) ** decay``            ``last_access_iter``
``DistanceLFU_...``      ``counts / (it - last_access + 1) ** decay``    ``counts``, ``last_access_iter``
=======================  ==============================================  ===============================

The ``Z`` best of ``table + new`` survive (stable descending sort: on ties the table id, then the more frequent
new id wins); table ids outside the best ``Z`` are evicted and their slots go to the new ids inside it, pairing
the two lists in score order. The table's last sorted position holds the sentinel ``2**63 - 1`` (the miss slot)
and is pinned to the top score so it is never evicted.
"""

import abc
from typing import Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import torch
from recsys_lib._public import public_at

from recsys_lib._public import public_at

_INT64_MAX: int = 9223372036854775807
ThresholdFilter = Callable[[torch.Tensor], Tuple[torch.Tensor, Union[float, torch.Tensor]]]


@torch.no_grad()
def dynamic_threshold_filter(
    id_counts: torch.Tensor,
    threshold_skew_multiplier: float = 10.0,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Admit ids seen more than ``threshold_skew_multiplier`` times the mean count.

    Args:
        id_counts: ``(U,)`` counts of the unique ids of one eviction round.
        threshold_skew_multiplier: how many mean counts an id must exceed.

    Returns:
        ``(mask (U,) bool, threshold (scalar))``; an id passes when its count is strictly above the threshold.
    """
    if id_counts.numel() == 0:  # an empty round (TorchRec divides by zero here)
        return torch.zeros_like(id_counts, dtype=torch.bool), torch.zeros((), dtype=torch.float)
    threshold = id_counts.sum() * (threshold_skew_multiplier / id_counts.numel())
    return id_counts > threshold, threshold


@torch.no_grad()
def average_threshold_filter(id_counts: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Admit ids whose count is strictly above the mean count of the round.

    Args:
        id_counts: ``(U,)`` counts of the unique ids.

    Returns:
        ``(mask (U,) bool, mean (float scalar))``.
    """
    counts = id_counts if id_counts.dtype == torch.float else id_counts.float()
    threshold = counts.mean()
    return counts > threshold, threshold


@torch.no_grad()
def probabilistic_threshold_filter(
    id_counts: torch.Tensor,
    per_id_probability: float = 0.01,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Admit each id with probability ``1 - (1 - p) ** count`` (one uniform draw per id).

    Args:
        id_counts: ``(U,)`` counts of the unique ids.
        per_id_probability: ``p``, the chance that one occurrence admits the id.

    Returns:
        ``(mask (U,) bool, draws (U,) float)``.
    """
    keep = torch.full_like(id_counts, 1.0 - per_id_probability, dtype=torch.float)
    score = 1.0 - torch.pow(keep, id_counts)
    draws = torch.rand(id_counts.size(), device=id_counts.device)
    return score > draws, draws


@public_at("recsys_lib.modules.mc_modules")
class MCHEvictionPolicyMetadataInfo(NamedTuple):
    """One metadata field of a policy: kept per table slot (``_mch_<name>``) and/or per incoming id."""

    metadata_name: str
    is_mch_metadata: bool
    is_history_metadata: bool


@public_at("recsys_lib.modules.mc_modules")
class MCHEvictionPolicy(abc.ABC):
    """Base of the MCH eviction policies.

    Args:
        metadata_info: the fields this policy keeps.
        threshold_filtering_func: optional admission filter ``counts (U,) -> (mask, threshold)`` applied to the
            unique ids of a round before scoring (see ``average_threshold_filter``).
    """

    def __init__(
        self,
        metadata_info: List[MCHEvictionPolicyMetadataInfo],
        threshold_filtering_func: Optional[ThresholdFilter] = None,
    ) -> None:
        self._metadata_info = metadata_info
        self._threshold_filtering_func = threshold_filtering_func

    @property
    @abc.abstractmethod
    def metadata_info(self) -> List[MCHEvictionPolicyMetadataInfo]:
        """The fields this policy keeps."""

    @abc.abstractmethod
    def record_history_metadata(
        self, current_iter: int, incoming_ids: torch.Tensor, history_metadata: Dict[str, torch.Tensor]
    ) -> None:
        """Fill ``history_metadata[name]`` (each ``(N,)``, aligned with ``incoming_ids``) for one batch, in place."""

    @abc.abstractmethod
    def coalesce_history_metadata(
        self,
        current_iter: int,
        history_metadata: Dict[str, torch.Tensor],
        unique_ids_counts: torch.Tensor,
        unique_inverse_mapping: torch.Tensor,
        additional_ids: Optional[torch.Tensor] = None,
        threshold_mask: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """Reduce per-occurrence history ``(N,)`` to per-unique-id metadata ``(U,)`` (filtered by the mask)."""

    @abc.abstractmethod
    def update_metadata_and_generate_eviction_scores(
        self,
        current_iter: int,
        mch_size: int,
        coalesced_history_argsort_mapping: torch.Tensor,
        coalesced_history_sorted_unique_ids_counts: torch.Tensor,
        coalesced_history_mch_matching_elements_mask: torch.Tensor,
        coalesced_history_mch_matching_indices: torch.Tensor,
        mch_metadata: Dict[str, torch.Tensor],
        coalesced_history_metadata: Dict[str, torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Update the table metadata and choose replacements.

        Args:
            current_iter: the training iteration of this round.
            mch_size: ``Z``, table slots.
            coalesced_history_argsort_mapping: ``(U,)`` order that sorts the round's unique ids by count, desc.
            coalesced_history_sorted_unique_ids_counts: ``(U,)`` counts in that order.
            coalesced_history_mch_matching_elements_mask: ``(U,)`` bool, id already in the table.
            coalesced_history_mch_matching_indices: ``(#matched,)`` table positions of those ids.
            mch_metadata: ``{name: (Z,)}`` table metadata, updated in place.
            coalesced_history_metadata: ``{name: (U,)}`` per unique id, in ``torch.unique`` order.

        Returns:
            ``(evicted_indices, selected_new_indices)``: table positions to overwrite, and positions among the
            new (non-matching, count-sorted) ids that take them, pairwise.
        """

    def _compute_selected_eviction_and_replacement_indices(
        self, pivot: int, eviction_scores: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        # scores: (Z + new,), table first. The best `pivot` survive; stable so ties keep table ids.
        order = torch.argsort(eviction_scores, descending=True, stable=True)
        best, rest = order[:pivot], order[pivot:]
        evicted = rest[rest < pivot]
        admitted = best[best >= pivot] - pivot
        return evicted, admitted


def _sort_history(metadata: torch.Tensor, argsort_mapping: torch.Tensor) -> torch.Tensor:
    # (U,) in unique order -> (U,) in count-descending order, written back in place as callers may hold it
    metadata.copy_(metadata[argsort_mapping])
    return metadata


def _update_and_select(
    policy: MCHEvictionPolicy,
    current_iter: int,
    mch_size: int,
    argsort_mapping: torch.Tensor,
    sorted_counts: torch.Tensor,
    hit: torch.Tensor,
    matched: torch.Tensor,
    mch_metadata: Dict[str, torch.Tensor],
    coalesced: Dict[str, torch.Tensor],
    score: Callable[[Dict[str, torch.Tensor]], torch.Tensor],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Shared round of the built-in policies over their fields (``counts`` and/or ``last_access_iter``).

    Matched table ids add their counts / take their latest access; the sentinel slot ``Z - 1`` is pinned to the
    top score; ``score`` maps the merged fields ``{name: (Z + new,)}`` (table first) to scores; the admitted new
    ids' fields are written into the evicted slots.
    """
    new: Dict[str, torch.Tensor] = {}
    if "counts" in mch_metadata:
        counts = mch_metadata["counts"]
        counts[matched] += sorted_counts[hit]
        new["counts"] = sorted_counts[~hit]
        counts[mch_size - 1] = _INT64_MAX  # the sentinel / miss slot is never evicted
    if "last_access_iter" in mch_metadata:
        last = mch_metadata["last_access_iter"]
        incoming = _sort_history(coalesced["last_access_iter"], argsort_mapping)
        last[matched] = incoming[hit]
        new["last_access_iter"] = incoming[~hit]
        last[mch_size - 1] = current_iter
    merged = {name: torch.cat([mch_metadata[name], values]) for name, values in new.items()}
    evicted, admitted = policy._compute_selected_eviction_and_replacement_indices(mch_size, score(merged))
    for name, values in new.items():
        mch_metadata[name][evicted] = values[admitted]
    return evicted, admitted


def _own_metadata_info(self: MCHEvictionPolicy) -> List[MCHEvictionPolicyMetadataInfo]:
    return self._metadata_info


def _nothing_to_record(
    self: MCHEvictionPolicy, current_iter: int, incoming_ids: torch.Tensor, history_metadata: Dict[str, torch.Tensor]
) -> None:
    return  # counts come from the coalesced unique ids


def _record_access_iter(
    self: MCHEvictionPolicy, current_iter: int, incoming_ids: torch.Tensor, history_metadata: Dict[str, torch.Tensor]
) -> None:
    history_metadata["last_access_iter"].fill_(current_iter)


def _nothing_to_coalesce(
    self: MCHEvictionPolicy,
    current_iter: int,
    history_metadata: Dict[str, torch.Tensor],
    unique_ids_counts: torch.Tensor,
    unique_inverse_mapping: torch.Tensor,
    additional_ids: Optional[torch.Tensor] = None,
    threshold_mask: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    return {}


def _coalesce_access_iter(
    self: MCHEvictionPolicy,
    current_iter: int,
    history_metadata: Dict[str, torch.Tensor],
    unique_ids_counts: torch.Tensor,
    unique_inverse_mapping: torch.Tensor,
    additional_ids: Optional[torch.Tensor] = None,
    threshold_mask: Optional[torch.Tensor] = None,
) -> Dict[str, torch.Tensor]:
    """Latest access iteration per unique id: ``(N,)`` occurrences -> ``(U,)`` (filtered by the mask)."""
    last = history_metadata["last_access_iter"]
    if additional_ids is not None:
        last = torch.cat([last, torch.full_like(additional_ids, current_iter)])
    per_id = torch.zeros_like(unique_ids_counts).scatter_reduce_(
        0, unique_inverse_mapping, last, reduce="amax", include_self=False
    )
    return {"last_access_iter": per_id[threshold_mask] if threshold_mask is not None else per_id}


@public_at("recsys_lib.modules.mc_modules")
class LFU_EvictionPolicy(MCHEvictionPolicy):
    """Least frequently used: keep the ids with the largest running counts.

    Args:
        threshold_filtering_func: optional admission filter.
    """

    def __init__(self, threshold_filtering_func: Optional[ThresholdFilter] = None) -> None:
        super().__init__(
            metadata_info=[MCHEvictionPolicyMetadataInfo("counts", True, False)],
            threshold_filtering_func=threshold_filtering_func,
        )

    metadata_info = property(_own_metadata_info)
    record_history_metadata = _nothing_to_record
    coalesce_history_metadata = _nothing_to_coalesce

    def update_metadata_and_generate_eviction_scores(
        self,
        current_iter: int,
        mch_size: int,
        coalesced_history_argsort_mapping: torch.Tensor,
        coalesced_history_sorted_unique_ids_counts: torch.Tensor,
        coalesced_history_mch_matching_elements_mask: torch.Tensor,
        coalesced_history_mch_matching_indices: torch.Tensor,
        mch_metadata: Dict[str, torch.Tensor],
        coalesced_history_metadata: Dict[str, torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return _update_and_select(
            self, current_iter, mch_size, coalesced_history_argsort_mapping,
            coalesced_history_sorted_unique_ids_counts, coalesced_history_mch_matching_elements_mask,
            coalesced_history_mch_matching_indices, mch_metadata, coalesced_history_metadata,
            lambda m: m["counts"],
        )


@public_at("recsys_lib.modules.mc_modules")
class LRU_EvictionPolicy(MCHEvictionPolicy):
    """Least recently used: keep the ids accessed in the latest iterations.

    Args:
        decay_exponent: exponent of the distance ``it - last_access + 1`` (monotone: does not change the order).
        threshold_filtering_func: optional admission filter.
    """

    def __init__(self, decay_exponent: float = 1.0, threshold_filtering_func: Optional[ThresholdFilter] = None) -> None:
        super().__init__(
            metadata_info=[MCHEvictionPolicyMetadataInfo("last_access_iter", True, True)],
            threshold_filtering_func=threshold_filtering_func,
        )
        self._decay_exponent = decay_exponent

    metadata_info = property(_own_metadata_info)
    record_history_metadata = _record_access_iter
    coalesce_history_metadata = _coalesce_access_iter

    def update_metadata_and_generate_eviction_scores(
        self,
        current_iter: int,
        mch_size: int,
        coalesced_history_argsort_mapping: torch.Tensor,
        coalesced_history_sorted_unique_ids_counts: torch.Tensor,
        coalesced_history_mch_matching_elements_mask: torch.Tensor,
        coalesced_history_mch_matching_indices: torch.Tensor,
        mch_metadata: Dict[str, torch.Tensor],
        coalesced_history_metadata: Dict[str, torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return _update_and_select(
            self, current_iter, mch_size, coalesced_history_argsort_mapping,
            coalesced_history_sorted_unique_ids_counts, coalesced_history_mch_matching_elements_mask,
            coalesced_history_mch_matching_indices, mch_metadata, coalesced_history_metadata,
            lambda m: torch.neg(torch.pow(current_iter - m["last_access_iter"] + 1, self._decay_exponent)),
        )


@public_at("recsys_lib.modules.mc_modules")
class DistanceLFU_EvictionPolicy(MCHEvictionPolicy):
    """Frequency discounted by recency: ``counts / (it - last_access + 1) ** decay_exponent``.

    Args:
        decay_exponent: how fast an id's count fades with the iterations since its last access.
        threshold_filtering_func: optional admission filter.
    """

    def __init__(self, decay_exponent: float = 1.0, threshold_filtering_func: Optional[ThresholdFilter] = None) -> None:
        super().__init__(
            metadata_info=[
                MCHEvictionPolicyMetadataInfo("counts", True, False),
                MCHEvictionPolicyMetadataInfo("last_access_iter", True, True),
            ],
            threshold_filtering_func=threshold_filtering_func,
        )
        self._decay_exponent = decay_exponent

    metadata_info = property(_own_metadata_info)
    record_history_metadata = _record_access_iter
    coalesce_history_metadata = _coalesce_access_iter

    def update_metadata_and_generate_eviction_scores(
        self,
        current_iter: int,
        mch_size: int,
        coalesced_history_argsort_mapping: torch.Tensor,
        coalesced_history_sorted_unique_ids_counts: torch.Tensor,
        coalesced_history_mch_matching_elements_mask: torch.Tensor,
        coalesced_history_mch_matching_indices: torch.Tensor,
        mch_metadata: Dict[str, torch.Tensor],
        coalesced_history_metadata: Dict[str, torch.Tensor],
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        return _update_and_select(
            self, current_iter, mch_size, coalesced_history_argsort_mapping,
            coalesced_history_sorted_unique_ids_counts, coalesced_history_mch_matching_elements_mask,
            coalesced_history_mch_matching_indices, mch_metadata, coalesced_history_metadata,
            lambda m: torch.div(m["counts"], torch.pow(current_iter - m["last_access_iter"] + 1, self._decay_exponent)),
        )
