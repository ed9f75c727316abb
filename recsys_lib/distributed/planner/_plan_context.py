"""Fingerprints of a planner's inputs, and loading a stored plan (``PlanLoader``).

Re-exported by ``planner.types``. A plan stored under ``hash_planner_context_inputs_str(...)`` can
be reused only while topology, batch size, search space, storage reservation and constraints hash
the same. Memory sizes are rounded to ``HUNDRED_GB`` first, so small driver differences do not
change the fingerprint.
"""

from recsys_lib._public import public_at
import abc
import hashlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from recsys_lib.distributed.planner.constants import HUNDRED_GB


@dataclass
@public_at("recsys_lib.distributed.planner.types")
class PlanDebugStats:
    """Facts about a planning run passed to ``Stats.log``."""

    planner_type: str
    timeout_seconds: Optional[int]


@public_at("recsys_lib.distributed.planner.types")
class PlanLoader(abc.ABC):
    """Supplies a stored plan: ``{sharding option hash: option}`` (see ``planners.extract_plan``)."""

    @abc.abstractmethod
    def load(self) -> Optional[Dict[int, Any]]:
        """The stored options, or ``None`` when there is nothing to load."""

    @abc.abstractmethod
    def plan_context_hash(self) -> Optional[str]:
        """The ``hash_planner_context_inputs_str`` the stored plan was made under (``None``: unchecked)."""


def hash_sha256_to_int(hashable_list: List[Any]) -> int:
    """SHA-256 of ``str(hashable_list)`` as an int."""
    return int(hash_sha256_str(hashable_list), 16)


def hash_sha256_str(hashable_list: List[Any]) -> str:
    """SHA-256 of ``str(hashable_list)`` as a hex string."""
    return hashlib.sha256(str(hashable_list).encode("utf-8")).hexdigest()


def round_to_nearest(x: int, unit: int) -> int:
    """``x`` rounded to a multiple of ``unit`` (Python's ``round``: halves go to even)."""
    return round(x / unit) * unit


def _topology_fingerprint(topology: Any, unit: int = HUNDRED_GB) -> List[Any]:
    devices: List[Tuple[int, int, int, int]] = [
        (
            d.rank,
            round_to_nearest(d.storage.hbm, unit),
            round_to_nearest(d.storage.ddr, unit),
            round_to_nearest(d.storage.ssd, unit),
        )
        for d in topology.devices
    ]
    bws = topology.comms_bandwidths
    return [
        topology.world_size, topology.compute_device, devices, topology.local_world_size,
        topology.intra_group_size, topology.hbm_mem_bw, topology.ddr_mem_bw, topology.ssd_mem_bw,
        topology.hbm_to_ddr_mem_bw, bws.intra_host_bw, bws.inter_host_bw, topology.bwd_compute_multiplier,
        topology.weighted_feature_bwd_compute_multiplier, topology.uneven_sharding_perf_multiplier,
    ]


def context_list(
    topology: Any, batch_size: int, enumerator: Any, storage_reservation: Any, constraints: Optional[Dict[str, Any]]
) -> List[Any]:
    search_space = getattr(enumerator, "last_stored_search_space", None)
    if search_space is None:
        raise ValueError(
            "hash_planner_context_inputs: the enumerator has no stored search space (run enumerate() first)"
        )
    reserved = storage_reservation.last_reserved_topology
    if reserved is None:
        raise ValueError("hash_planner_context_inputs: the storage reservation has not reserved yet (run reserve() first)")
    options = [
        [
            o.fqn, o.sharding_type, o.compute_kernel,
            tuple(
                (tuple(s.size), tuple(s.offset), s.rank,
                 (s.storage.hbm, s.storage.ddr, s.storage.ssd) if s.storage else None)
                for s in o.shards
            ),
            o.cache_params,
        ]
        for o in search_space
    ]
    return [
        hash_sha256_to_int(_topology_fingerprint(topology)),
        batch_size,
        options,
        type(storage_reservation).__name__,
        hash_sha256_to_int(_topology_fingerprint(reserved)),
        tuple((k, hash(v)) for k, v in sorted(constraints.items())) if constraints else None,
    ]
