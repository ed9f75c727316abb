"""Storage reservations: memory taken off every device before tables are placed.

``HeuristicalStorageReservation(percentage)`` reserves, on every rank, ``percentage`` of its memory
(headroom), the dense (non-table) parameters x ``parameter_multiplier`` (weights, gradients,
optimizer state, activations; or ``dense_tensor_estimate`` bytes), and the rank's sparse input (ids
and lengths of one batch, twice: the batch in use and the next). The reservation comes out of HBM on
an accelerator and out of DDR on cpu.
"""

import copy
from enum import Enum, unique
from typing import Dict, List, Optional, Set

from torch import nn

from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.constants import BIGINT_DTYPE, LENGTH_DTYPE, POOLING_FACTOR
from recsys_lib.distributed.planner.types import (
    ParameterConstraints,
    PlannerError,
    PlannerErrorType,
    StorageReservation,
)
from recsys_lib.distributed.planner.utils import bytes_to_gb, sharder_name
from recsys_lib.distributed.planner.utils import bytes_to_gb, gb_to_bytes, sharder_name
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner._hardware import Storage  # noqa: F401
from recsys_lib.distributed.planner.utils import storage_repr_in_gb  # noqa: F401,E402

_INPUTS_IN_FLIGHT = 2


def _shardable(module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> Dict[str, nn.Parameter]:
    smap = {sharder_name(s.module_type): s for s in sharders}
    out: Dict[str, nn.Parameter] = {}
    stack = [module]
    while stack:
        m = stack.pop()
        sharder = smap.get(sharder_name(type(m)))
        if sharder is not None:
            out.update(sharder.shardable_parameters(m))
            continue
        stack.extend(m.children())
    return out


def _dense_bytes(module: nn.Module, shardable_ids: Set[int]) -> int:
    total = 0
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in shardable_ids:
            total += t.element_size() * t.numel()
    return total


def _kjt_bytes(
    batch_size: int, tables: Dict[str, nn.Parameter], constraints: Optional[Dict[str, ParameterConstraints]]
) -> int:
    total = 0.0
    for name in tables:
        pc = (constraints or {}).get(name)
        factors = pc.pooling_factors if pc is not None else [POOLING_FACTOR]
        total += sum(batch_size * (f * BIGINT_DTYPE + LENGTH_DTYPE) for f in factors)
    return int(total * _INPUTS_IN_FLIGHT)


def _reserve(topology: Topology, percentage: float, fixed_bytes: int, what: str) -> Topology:
    if not 0.0 <= percentage < 1.0:
        raise ValueError(f"storage reservation percentage must be in [0, 1), got {percentage}")
    reserved = copy.deepcopy(topology)
    kind = "ddr" if topology.compute_device == "cpu" else "hbm"
    for d in reserved.devices:
        cap = getattr(d.storage, kind)
        left = int(cap * (1.0 - percentage)) - fixed_bytes
        if left < 0:
            raise PlannerError(
                f"rank {d.rank}: reserving {percentage:.0%} of {bytes_to_gb(cap):.4g} GB {kind.upper()} plus "
                f"{bytes_to_gb(fixed_bytes):.4g} GB for {what} leaves nothing for embedding tables "
                f"(short by {bytes_to_gb(-left):.4g} GB)",
                PlannerErrorType.INSUFFICIENT_STORAGE,
            )
        setattr(d.storage, kind, left)
    return reserved


@unique
class StorageReservationType(Enum):
    """The built-in reservation policies."""

    HEURISTIC = "heuristic"
    FIXED_PERCENTAGE = "fixed_percentage"
    FIXED_ABSOLUTE = "fixed_absolute"


class FixedAbsoluteStorageReservation(StorageReservation):
    """Reserves ``hbm_reserved_bytes`` of every device's HBM (HBM only, never below 0; DDR untouched).

    Example::

        r = FixedAbsoluteStorageReservation.from_gb(2.0)
        left = r.reserve(Topology(world_size=2, compute_device="cuda", hbm_cap=10 * 1024**3), 512, model, sharders)
        assert left.devices[0].storage.hbm == 8 * 1024**3
    """

    def __init__(self, hbm_reserved_bytes: int) -> None:
        if hbm_reserved_bytes < 0:
            raise ValueError(f"FixedAbsoluteStorageReservation: hbm_reserved_bytes must be >= 0, got {hbm_reserved_bytes}")
        self._hbm_reserved_bytes = hbm_reserved_bytes
        self._last_reserved_topology: Optional[Topology] = None

    @classmethod
    def from_gb(cls, hbm_reserved_gb: float) -> "FixedAbsoluteStorageReservation":
        return cls(hbm_reserved_bytes=gb_to_bytes(hbm_reserved_gb))

    def reserve(
        self,
        topology: Topology,
        batch_size: int,
        module: nn.Module,
        sharders: List[ModuleSharder[nn.Module]],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
    ) -> Topology:
        reserved = copy.deepcopy(topology)
        for d in reserved.devices:
            d.storage.hbm = max(0, d.storage.hbm - self._hbm_reserved_bytes)
        self._last_reserved_topology = reserved
        return reserved

    @property
    def last_reserved_topology(self) -> Optional[Topology]:
        return self._last_reserved_topology


class FixedPercentageStorageReservation(StorageReservation):
    """Reserves ``percentage`` of every device's memory."""

    def __init__(self, percentage: float) -> None:
        if not 0.0 <= percentage < 1.0:
            raise ValueError(f"percentage must be in [0, 1), got {percentage}")
        self._percentage = percentage
        self._last_reserved_topology: Optional[Topology] = None

    def reserve(
        self,
        topology: Topology,
        batch_size: int,
        module: nn.Module,
        sharders: List[ModuleSharder[nn.Module]],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
    ) -> Topology:
        self._last_reserved_topology = _reserve(topology, self._percentage, 0, "nothing else")
        return self._last_reserved_topology

    @property
    def last_reserved_topology(self) -> Optional[Topology]:
        return self._last_reserved_topology


class HeuristicalStorageReservation(StorageReservation):
    """See the module docstring."""

    def __init__(
        self, percentage: float, parameter_multiplier: float = 6.0, dense_tensor_estimate: Optional[int] = None
    ) -> None:
        if not 0.0 <= percentage < 1.0:
            raise ValueError(f"percentage must be in [0, 1), got {percentage}")
        self._percentage = percentage
        self._parameter_multiplier = parameter_multiplier
        self._dense_tensor_estimate = dense_tensor_estimate
        self._last_reserved_topology: Optional[Topology] = None
        self._dense_storage = 0
        self._kjt_storage = 0

    def reserve(
        self,
        topology: Topology,
        batch_size: int,
        module: nn.Module,
        sharders: List[ModuleSharder[nn.Module]],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
    ) -> Topology:
        tables = _shardable(module, sharders)
        ids = {id(p) for p in tables.values()}
        if self._dense_tensor_estimate is not None:
            self._dense_storage = int(self._dense_tensor_estimate)
        else:
            self._dense_storage = int(_dense_bytes(module, ids) * self._parameter_multiplier)
        self._kjt_storage = _kjt_bytes(batch_size, tables, constraints)
        self._last_reserved_topology = _reserve(
            topology, self._percentage, self._dense_storage + self._kjt_storage, "dense parameters and inputs"
        )
        return self._last_reserved_topology

    @property
    def last_reserved_topology(self) -> Optional[Topology]:
        return self._last_reserved_topology


class InferenceStorageReservation(HeuristicalStorageReservation):
    """As the heuristical reservation with the dense parameters counted once (no gradients/optimizer)."""

    def __init__(self, percentage: float, dense_tensor_estimate: Optional[int] = None) -> None:
        super().__init__(percentage, parameter_multiplier=1.0, dense_tensor_estimate=dense_tensor_estimate)
