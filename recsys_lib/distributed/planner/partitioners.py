"""Partitioners: give every shard of a proposal a rank.

``GreedyPerfPartitioner`` takes options largest first (by storage, or perf) and puts each where the
accumulated perf is lowest among the devices that still have room. Shards of one option that share a
column block (same column offset and width) but split its rows form a *row group*; a row group spread
over a host goes one shard per local rank, in order. Placement by ``partition_by``:

==============  =====================================================================================
``uniform``     shard ``i`` on rank ``i`` (row-wise, data-parallel)
``device``      every shard on the lowest-perf device with room (table-wise, column-wise)
``host``        every shard on one host, the one with the lowest perf that fits all of them; row
                groups in local-rank order, single shards on the host's lowest-perf device
``multi_host``  each row group on the lowest-perf host that fits it (grid)
==============  =====================================================================================

After the greedy pass, a local search moves ``device`` shards off the busiest rank while that lowers
the maximum (``partitioner.refine = False`` turns it off). ``PlannerError(PARTITION)`` names the table that did not
fit, what it needed and the most any device had left.
"""

import copy
from dataclasses import dataclass
from enum import Enum, unique
from typing import Callable, Dict, List, Optional, Tuple

from recsys_lib.distributed.planner._hardware import Storage, Topology
from recsys_lib.distributed.planner.types import Partitioner, PlannerError, PlannerErrorType, Shard, ShardingOption
from recsys_lib.distributed.planner._hardware import DeviceHardware, Storage, Topology
from recsys_lib.distributed.planner.types import Partitioner, PlannerError, PlannerErrorType, Shard, ShardingOption
from recsys_lib.distributed.planner.utils import bytes_to_gb, reset_shard_rank
from recsys_lib.distributed.planner.perf_models import NoopPerfModel  # noqa: F401,E402
from recsys_lib.distributed.planner.types import PartitionByType, PerfModel  # noqa: F401
from recsys_lib.distributed.planner._hardware import Perf  # noqa: F401
from recsys_lib.distributed.planner.utils import mb_to_bytes  # noqa: F401,E402


@dataclass
class ShardingOptionGroup:
    """Options placed together (one table's, or those tied by a ``dependency``) and their totals."""

    sharding_options: List[ShardingOption]
    storage_sum: Storage
    perf_sum: float
    param_count: int


@dataclass
class OrderedDeviceHardware:
    """A device ordered for greedy placement: least assigned perf first, then local rank (spreads
    load over hosts' DDR), then rank."""

    device: DeviceHardware
    local_world_size: int

    def _key(self) -> Tuple[float, int, int]:
        return (self.device.perf.total, self.device.rank % self.local_world_size, self.device.rank)

    def __lt__(self, other: "OrderedDeviceHardware") -> bool:
        return self._key() < other._key()


@unique
class SortBy(Enum):
    STORAGE = "storage"
    PERF = "perf"


class _Devices:
    """Mutable per-rank accumulators of one partition run (free storage, assigned perf)."""

    def __init__(self, topology: Topology) -> None:
        self.world_size = topology.world_size
        self.local = topology.local_world_size
        self.hbm = [d.storage.hbm for d in topology.devices]
        self.ddr = [d.storage.ddr for d in topology.devices]
        self.perf = [0.0] * topology.world_size

    def fits(self, rank: int, s: Storage) -> bool:
        return s.hbm <= self.hbm[rank] and s.ddr <= self.ddr[rank]

    def add(self, rank: int, shard: Shard) -> None:
        st = shard.storage or Storage(0, 0)
        self.hbm[rank] -= st.hbm
        self.ddr[rank] -= st.ddr
        self.perf[rank] += shard.perf.total if shard.perf is not None else 0.0
        shard.rank = rank

    def remove(self, rank: int, shard: Shard) -> None:
        st = shard.storage or Storage(0, 0)
        self.hbm[rank] += st.hbm
        self.ddr[rank] += st.ddr
        self.perf[rank] -= shard.perf.total if shard.perf is not None else 0.0
        shard.rank = None

    def host_ranks(self, host: int) -> List[int]:
        return list(range(host * self.local, (host + 1) * self.local))

    def host_perf(self, host: int) -> float:
        return sum(self.perf[r] for r in self.host_ranks(host))


def _storage(shard: Shard) -> Storage:
    return shard.storage or Storage(0, 0)


def _row_groups(option: ShardingOption) -> List[List[Shard]]:
    """Shards grouped by column block (same column offset and width), in shard order."""
    groups: Dict[Tuple[int, int], List[Shard]] = {}
    for s in option.shards:
        groups.setdefault((s.offset[1], s.size[1]), []).append(s)
    return list(groups.values())


def _fail(option: ShardingOption, shard: Shard, devices: _Devices, where: str) -> PlannerError:
    need = _storage(shard)
    best = max(range(devices.world_size), key=lambda r: (devices.hbm[r], devices.ddr[r]))
    short_hbm = max(0, need.hbm - devices.hbm[best])
    short_ddr = max(0, need.ddr - devices.ddr[best])
    return PlannerError(
        f"table {option.fqn!r} ({option.sharding_type}/{option.compute_kernel}) does not fit {where}: a shard "
        f"needs HBM {bytes_to_gb(need.hbm):.4g} GB, DDR {bytes_to_gb(need.ddr):.4g} GB; the roomiest device "
        f"(rank {best}) has HBM {bytes_to_gb(devices.hbm[best]):.4g} GB, DDR {bytes_to_gb(devices.ddr[best]):.4g} GB "
        f"left (short by HBM {bytes_to_gb(short_hbm):.4g} GB, DDR {bytes_to_gb(short_ddr):.4g} GB)",
        PlannerErrorType.PARTITION,
    )


def _lowest_perf_fitting(devices: _Devices, ranks: List[int], shard: Shard) -> Optional[int]:
    need = _storage(shard)
    best: Optional[int] = None
    for r in ranks:
        if devices.fits(r, need) and (best is None or devices.perf[r] < devices.perf[best]):
            best = r
    return best


def _place_on_host(devices: _Devices, host: int, groups: List[List[Shard]]) -> bool:
    """Places all ``groups`` on ``host`` (row groups in order); undoes everything and returns False if not possible."""
    ranks = devices.host_ranks(host)
    placed: List[Tuple[int, Shard]] = []
    ok = True
    for group in groups:
        if len(group) == len(ranks) and len(group) > 1:
            targets: List[Optional[int]] = list(ranks)
        else:
            targets = [None] * len(group)
        for shard, target in zip(group, targets):
            rank = target if target is not None else _lowest_perf_fitting(devices, ranks, shard)
            if rank is None or not devices.fits(rank, _storage(shard)):
                ok = False
                break
            devices.add(rank, shard)
            placed.append((rank, shard))
        if not ok:
            break
    if not ok:
        for rank, shard in reversed(placed):
            devices.remove(rank, shard)
    return ok


def _by_uniform(option: ShardingOption, devices: _Devices) -> None:
    if option.num_shards != devices.world_size:
        raise PlannerError(
            f"table {option.fqn!r}: {option.sharding_type} has {option.num_shards} shards for {devices.world_size} ranks",
            PlannerErrorType.PARTITION,
        )
    for rank, shard in enumerate(option.shards):
        if not devices.fits(rank, _storage(shard)):
            raise _fail(option, shard, devices, f"on rank {rank}")
        devices.add(rank, shard)


def _by_device(option: ShardingOption, devices: _Devices) -> None:
    all_ranks = list(range(devices.world_size))
    for shard in option.shards:
        rank = _lowest_perf_fitting(devices, all_ranks, shard)
        if rank is None:
            raise _fail(option, shard, devices, "on any device")
        devices.add(rank, shard)


def _hosts_by_perf(devices: _Devices) -> List[int]:
    hosts = range(devices.world_size // devices.local)
    return sorted(hosts, key=lambda h: (devices.host_perf(h), h))


def _by_host(option: ShardingOption, devices: _Devices) -> None:
    groups = _row_groups(option)
    for host in _hosts_by_perf(devices):
        if _place_on_host(devices, host, groups):
            return
    raise _fail(option, max(option.shards, key=lambda s: _storage(s).hbm + _storage(s).ddr), devices, "on any host")


def _by_multi_host(option: ShardingOption, devices: _Devices) -> None:
    for group in _row_groups(option):
        if not any(_place_on_host(devices, h, [group]) for h in _hosts_by_perf(devices)):
            raise _fail(option, group[0], devices, "on any host")


_PLACERS: Dict[str, Callable[[ShardingOption, _Devices], None]] = {
    "uniform": _by_uniform,
    "device": _by_device,
    "host": _by_host,
    "multi_host": _by_multi_host,
}


def _refine(proposal: List[ShardingOption], devices: _Devices, max_moves: int) -> None:
    """Moves ``device``-placed shards off the busiest rank while the busiest rank's load drops."""
    movable = [s for o in proposal if o.partition_by == "device" for s in o.shards]
    for _ in range(max_moves):
        top = max(range(devices.world_size), key=lambda r: devices.perf[r])
        current = devices.perf[top]
        best: Optional[Tuple[float, Shard, int]] = None
        for shard in movable:
            if shard.rank != top or shard.perf is None:
                continue
            p = shard.perf.total
            for r in range(devices.world_size):
                if r == top or not devices.fits(r, _storage(shard)):
                    continue
                new_max = max(current - p, devices.perf[r] + p)
                if new_max < current * (1 - 1e-9) and (best is None or new_max < best[0]):
                    best = (new_max, shard, r)
        if best is None:
            return
        _, shard, r = best
        devices.remove(top, shard)
        devices.add(r, shard)


class GreedyPerfPartitioner(Partitioner):
    """Greedy placement by lowest accumulated perf (see the module docstring).

    Args:
        sort_by: place options in decreasing ``storage`` (default) or ``perf`` order.
        balance_modules: place the options of the module with the least total perf first.

    Attributes:
        refine: (recsys_lib) run the local search after the greedy pass (default ``True``; set
            ``partitioner.refine = False`` or the class attribute to turn it off).
    """

    refine: bool = True

    def __init__(self, sort_by: SortBy = SortBy.STORAGE, balance_modules: bool = False) -> None:
        self._sort_by = sort_by
        self._balance_modules = balance_modules

    def _order(self, proposal: List[ShardingOption]) -> List[ShardingOption]:
        def key(o: ShardingOption) -> Tuple[float, ...]:
            sm = o.summary()
            if self._sort_by == SortBy.PERF:
                return (-sm.total_perf,)
            return (-float(sm.hbm), -float(sm.ddr), -sm.total_perf)

        ordered = sorted(proposal, key=key)
        if self._balance_modules:
            module_perf: Dict[str, float] = {}
            for o in proposal:
                module_perf[o.path] = module_perf.get(o.path, 0.0) + o.total_perf
            ordered = sorted(ordered, key=lambda o: module_perf[o.path])
        # options tied by a dependency are placed next to each other
        by_dep: Dict[str, List[ShardingOption]] = {}
        out: List[ShardingOption] = []
        for o in ordered:
            if o.dependency is None:
                out.append(o)
            else:
                if o.dependency not in by_dep:
                    by_dep[o.dependency] = []
                    out.append(o)
                else:
                    by_dep[o.dependency].append(o)
        final: List[ShardingOption] = []
        for o in out:
            final.append(o)
            if o.dependency is not None:
                final.extend(by_dep[o.dependency])
        return final

    def partition(
        self, proposal: List[ShardingOption], storage_constraint: Topology, hbm_per_device: Optional[int] = None
    ) -> List[ShardingOption]:
        devices = _Devices(storage_constraint)
        if hbm_per_device is not None:
            devices.hbm = [min(h, hbm_per_device) for h in devices.hbm]
        reset_shard_rank(proposal)
        for option in self._order(proposal):
            if option.partition_by not in _PLACERS:
                raise PlannerError(f"table {option.fqn!r}: unknown partition_by {option.partition_by!r}")
            _PLACERS[option.partition_by](option, devices)
        if self.refine:
            _refine(proposal, devices, max_moves=min(2 * len(proposal) + 8, 64))
        return proposal


class MemoryBalancedPartitioner(Partitioner):
    """Greedy partitioning under the lowest per-device memory cap that keeps perf within ``tolerance``
    of the unconstrained greedy plan (binary search over the cap, ``max_search_count`` probes)."""

    def __init__(self, max_search_count: int = 10, tolerance: float = 0.02, balance_modules: bool = False) -> None:
        self._max_search_count = max_search_count
        self._tolerance = tolerance
        self._balance_modules = balance_modules

    def partition(self, proposal: List[ShardingOption], storage_constraint: Topology) -> List[ShardingOption]:
        greedy = GreedyPerfPartitioner(balance_modules=self._balance_modules)
        greedy.partition(proposal, storage_constraint)
        kind = "ddr" if storage_constraint.compute_device == "cpu" else "hbm"

        def max_perf_and_mem() -> Tuple[float, int]:
            perf: Dict[int, float] = {}
            mem: Dict[int, int] = {}
            for o in proposal:
                for s in o.shards:
                    assert s.rank is not None
                    perf[s.rank] = perf.get(s.rank, 0.0) + (s.perf.total if s.perf else 0.0)
                    mem[s.rank] = mem.get(s.rank, 0) + getattr(_storage(s), kind)
            return max(perf.values(), default=0.0), max(mem.values(), default=0)

        base_perf, base_mem = max_perf_and_mem()
        best_ranks = [[s.rank for s in o.shards] for o in proposal]
        total = sum(getattr(_storage(s), kind) for o in proposal for s in o.shards)
        lo, hi = total // storage_constraint.world_size, base_mem
        for _ in range(self._max_search_count):
            if lo >= hi:
                break
            cap = (lo + hi) // 2
            topo = copy.deepcopy(storage_constraint)
            for d in topo.devices:
                setattr(d.storage, kind, min(getattr(d.storage, kind), cap))
            try:
                greedy.partition(proposal, topo)
                perf, mem = max_perf_and_mem()
                ok = perf <= base_perf * (1 + self._tolerance)
            except PlannerError:
                ok = False
            if ok:
                best_ranks = [[s.rank for s in o.shards] for o in proposal]
                hi = cap
            else:
                lo = cap + 1
        for o, ranks in zip(proposal, best_ranks):
            for s, r in zip(o.shards, ranks):
                s.rank = r
        return proposal
