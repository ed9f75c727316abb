"""Hardware values of the planner: ``Storage``, ``Perf``, ``DeviceHardware``, comms bandwidths, ``Topology``.

Re-exported by ``planner.types`` (TorchRec's path). Bandwidths are bytes/ms, perf terms ms.

Topology of ``W`` ranks with ``L`` ranks per host (host-major, as ``comm.py``)::

    W=4, L=2      host 0: rank 0 (cuda:0)  rank 1 (cuda:1)
                  host 1: rank 2 (cuda:0)  rank 3 (cuda:1)
"""

from recsys_lib._public import public_at
import abc
from dataclasses import dataclass
from enum import Enum, unique
from typing import Any, Dict, List, Optional, Tuple, Union

from recsys_lib.distributed.planner import constants as C
from recsys_lib.distributed.planner.calibration import CpuCalibration, default_cpu_calibration

_DEVICES = ("cpu", "cuda", "mtia")


@dataclass(order=True)
@public_at("recsys_lib.distributed.planner.types")
class Storage:
    """Bytes of accelerator memory (``hbm``), host memory (``ddr``) and SSD (``ssd``).

    Ordered as the tuple ``(hbm, ddr, ssd)``.
    """

    hbm: int
    ddr: int
    ssd: int = 0

    def __add__(self, other: "Storage") -> "Storage":
        return Storage(hbm=self.hbm + other.hbm, ddr=self.ddr + other.ddr, ssd=self.ssd + other.ssd)

    def __sub__(self, other: "Storage") -> "Storage":
        return Storage(hbm=self.hbm - other.hbm, ddr=self.ddr - other.ddr, ssd=self.ssd - other.ssd)

    def __hash__(self) -> int:
        return hash((self.hbm, self.ddr, self.ssd))

    def fits_in(self, other: "Storage") -> bool:
        """True when every kind fits into ``other``."""
        return self.hbm <= other.hbm and self.ddr <= other.ddr and self.ssd <= other.ssd


@dataclass
@public_at("recsys_lib.distributed.planner.types")
class Perf:
    """Estimated milliseconds of one training step spent by a shard, by phase.

    ``input_dist_comms`` (the KJT all-to-all before the lookup) is reported but not part of ``total``,
    as in TorchRec.
    """

    fwd_compute: float
    fwd_comms: float
    bwd_compute: float
    bwd_comms: float
    input_dist_comms: float = 0.0
    prefetch_compute: float = 0.0

    @property
    def total(self) -> float:
        return self.fwd_compute + self.fwd_comms + self.bwd_compute + self.bwd_comms + self.prefetch_compute

    def __add__(self, other: "Perf") -> "Perf":
        return Perf(
            fwd_compute=self.fwd_compute + other.fwd_compute,
            fwd_comms=self.fwd_comms + other.fwd_comms,
            bwd_compute=self.bwd_compute + other.bwd_compute,
            bwd_comms=self.bwd_comms + other.bwd_comms,
            input_dist_comms=self.input_dist_comms + other.input_dist_comms,
            prefetch_compute=self.prefetch_compute + other.prefetch_compute,
        )

    def __hash__(self) -> int:
        return hash(
            (self.fwd_compute, self.fwd_comms, self.bwd_compute, self.bwd_comms, self.input_dist_comms, self.prefetch_compute)
        )


@dataclass
@public_at("recsys_lib.distributed.planner.types")
class DeviceHardware:
    """One rank's device: what it can hold (``storage``) and the perf assigned to it so far."""

    rank: int
    storage: Storage
    perf: Perf


@dataclass
@public_at("recsys_lib.distributed.planner.types")
class CriticalPathEstimate:
    """Step time split into communication and computation on the critical path (ms)."""

    comms_estimate: float
    comp_estimate: float

    def total(self) -> float:
        return self.comms_estimate + self.comp_estimate


@unique
@public_at("recsys_lib.distributed.planner.types")
class CollectiveType(Enum):
    ALL_TO_ALL = "all_to_all"
    REDUCE_SCATTER = "reduce_scatter"
    ALL_GATHER = "all_gather"
    ALL_REDUCE = "all_reduce"


@public_at("recsys_lib.distributed.planner.types")
class GeneralizedCommsBandwidth(abc.ABC):
    """Bandwidth (bytes/ms) of a collective over ``world_size`` ranks, ``local_world_size`` per host."""

    @abc.abstractmethod
    def get_bw(self, local_world_size: int, world_size: int, collective_type: CollectiveType) -> float:
        ...

    @property
    @abc.abstractmethod
    def intra_host_bw(self) -> float:
        ...

    @property
    @abc.abstractmethod
    def inter_host_bw(self) -> float:
        ...


@public_at("recsys_lib.distributed.planner.types")
class BasicCommsBandwidths(GeneralizedCommsBandwidth):
    """A collective that stays on one host runs at ``intra_host_bw``; one that crosses hosts at ``inter_host_bw``."""

    def __init__(self, inter_host_bw: float = C.CROSS_NODE_BANDWIDTH, intra_host_bw: float = C.INTRA_NODE_BANDWIDTH) -> None:
        if inter_host_bw <= 0 or intra_host_bw <= 0:
            raise ValueError(f"bandwidths must be > 0, got inter={inter_host_bw} intra={intra_host_bw}")
        self._inter = float(inter_host_bw)
        self._intra = float(intra_host_bw)

    @property
    def intra_host_bw(self) -> float:
        return self._intra

    @property
    def inter_host_bw(self) -> float:
        return self._inter

    def get_bw(self, local_world_size: int, world_size: int, collective_type: CollectiveType) -> float:
        return self._intra if world_size <= local_world_size else self._inter


@public_at("recsys_lib.distributed.planner.types")
class CustomTopologyData:
    """Per-rank overrides (e.g. ``{"hbm_cap": [bytes per rank]}``) for heterogeneous devices.

    Keys must be in ``supported_fields`` (``hbm_cap``, ``ddr_cap``, ``ssd_cap``), one value per rank.
    """

    _SUPPORTED: Tuple[str, ...] = ("hbm_cap", "ddr_cap", "ssd_cap")

    def __init__(self, data: Dict[str, List[int]], world_size: int) -> None:
        for key, values in data.items():
            if key not in self.supported_fields:
                raise ValueError(f"CustomTopologyData: unsupported field {key!r}; supported {self.supported_fields}")
            if len(values) != world_size:
                raise ValueError(f"CustomTopologyData[{key!r}] has {len(values)} values, expected {world_size}")
        self._data = data
        self._world_size = world_size

    @property
    def supported_fields(self) -> List[str]:
        return list(self._SUPPORTED)

    @property
    def data(self) -> Dict[str, List[int]]:
        return self._data

    @property
    def world_size(self) -> int:
        return self._world_size

    def get_data(self, key: str) -> List[int]:
        if key not in self._data:
            raise KeyError(f"CustomTopologyData has no {key!r}; it has {sorted(self._data)}")
        return self._data[key]

    def has_data(self, key: str) -> bool:
        return key in self._data


@public_at("recsys_lib.distributed.planner.types")
class Topology:
    """The machines a plan is for: ranks, per-rank memory, memory and network bandwidths.

    Args:
        world_size: number of ranks ``W``.
        compute_device: ``"cpu"``, ``"cuda"`` or ``"mtia"``.
        hbm_cap / ddr_cap / ssd_cap: bytes per rank (defaults: 32 GiB HBM on accelerators, 0 on cpu;
            128 GiB DDR; 2 TiB SSD).
        local_world_size: ranks per host ``L`` (default ``W``: one host).
        pod_size: hosts per fast-interconnect pod; ``intra_group_size`` is ``L * pod_size`` (default ``L``).
        hbm_mem_bw ... inter_host_bw: bandwidths in bytes/ms (TorchRec's GPU defaults).
        bwd_compute_multiplier: backward compute = forward compute x this.
        created_by_factory: set by ``TopologyFactory.create_topology`` (recorded, nothing else).

    CPU calibration (recsys_lib): with ``compute_device="cpu"`` the kernel bandwidths come from measured CPU
    constants (default: the calibration shipped in ``calibration.py``), and the network, DDR and backward
    constants too unless given explicitly (i.e. left at TorchRec's GPU defaults). ``set_calibration`` swaps in
    another ``CpuCalibration`` or the path of its JSON file.

    Example::

        topo = Topology(world_size=4, compute_device="cuda", local_world_size=2)
        assert [d.rank for d in topo.devices] == [0, 1, 2, 3] and topo.devices[0].storage.hbm == 32 * 1024**3
    """

    def __init__(
        self,
        world_size: int,
        compute_device: str,
        hbm_cap: Optional[int] = None,
        ddr_cap: Optional[int] = None,
        ssd_cap: Optional[int] = None,
        local_world_size: Optional[int] = None,
        pod_size: Optional[int] = None,
        hbm_mem_bw: float = C.HBM_MEM_BW,
        ddr_mem_bw: float = C.DDR_MEM_BW,
        ssd_mem_bw: float = C.SSD_MEM_BW,
        hbm_to_ddr_mem_bw: float = C.HBM_TO_DDR_MEM_BW,
        intra_host_bw: float = C.INTRA_NODE_BANDWIDTH,
        inter_host_bw: float = C.CROSS_NODE_BANDWIDTH,
        bwd_compute_multiplier: float = C.BWD_COMPUTE_MULTIPLIER,
        custom_topology_data: Optional[CustomTopologyData] = None,
        weighted_feature_bwd_compute_multiplier: float = C.WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER,
        uneven_sharding_perf_multiplier: float = 1.0,
        generalized_comms_bandwidths: Optional[GeneralizedCommsBandwidth] = None,
        created_by_factory: bool = False,
    ) -> None:
        if compute_device not in _DEVICES:
            raise ValueError(f"Topology: compute_device must be one of {_DEVICES}, got {compute_device!r}")
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"Topology: world_size must be a positive int, got {world_size!r}")
        lws = world_size if local_world_size is None else local_world_size
        if lws < 1 or world_size % lws != 0:
            raise ValueError(f"Topology: local_world_size {lws} must be >= 1 and divide world_size {world_size}")
        if pod_size is not None and pod_size < 1:
            raise ValueError(f"Topology: pod_size must be >= 1, got {pod_size}")
        self._world_size = world_size
        self._local_world_size = lws
        self._pod_size = pod_size
        self._intra_group_size = lws * pod_size if pod_size is not None else lws
        self._created_by_factory = created_by_factory
        self._ssd_mem_bw = ssd_mem_bw
        self._compute_device = compute_device
        self._hbm_mem_bw = hbm_mem_bw
        self._hbm_to_ddr_mem_bw = hbm_to_ddr_mem_bw
        # The constants a calibration may replace, as given (before any calibration).
        self._given_bw = (intra_host_bw, inter_host_bw, ddr_mem_bw, bwd_compute_multiplier)
        self._given_comms = generalized_comms_bandwidths
        self._calibration: Optional[CpuCalibration] = None
        self._apply_calibration(default_cpu_calibration() if compute_device == "cpu" else None)
        self._weighted_feature_bwd_compute_multiplier = weighted_feature_bwd_compute_multiplier
        self._uneven_sharding_perf_multiplier = uneven_sharding_perf_multiplier
        self._custom_topology_data = custom_topology_data
        hbm = (C.HBM_CAP if compute_device != "cpu" else 0) if hbm_cap is None else hbm_cap
        ddr = C.DDR_CAP if ddr_cap is None else ddr_cap
        hbm_per_rank = [hbm] * world_size
        ddr_per_rank = [ddr] * world_size
        ssd_per_rank = [C.SSD_CAP if ssd_cap is None else ssd_cap] * world_size
        if custom_topology_data is not None:
            if custom_topology_data.world_size != world_size:
                raise ValueError("Topology: custom_topology_data.world_size differs from world_size")
            if custom_topology_data.has_data("hbm_cap"):
                hbm_per_rank = list(custom_topology_data.get_data("hbm_cap"))
            if custom_topology_data.has_data("ddr_cap"):
                ddr_per_rank = list(custom_topology_data.get_data("ddr_cap"))
            if custom_topology_data.has_data("ssd_cap"):
                ssd_per_rank = list(custom_topology_data.get_data("ssd_cap"))
        self._devices: List[DeviceHardware] = [
            DeviceHardware(
                rank=r,
                storage=Storage(hbm=hbm_per_rank[r], ddr=ddr_per_rank[r], ssd=ssd_per_rank[r]),
                perf=Perf(0.0, 0.0, 0.0, 0.0),
            )
            for r in range(world_size)
        ]

    @property
    def cost_signature(self) -> Tuple[Any, ...]:
        """Everything the perf model reads from the topology (estimates are cached under it)."""
        return (
            self._world_size, self._local_world_size, self._compute_device, self._hbm_mem_bw, self._ddr_mem_bw,
            self._hbm_to_ddr_mem_bw, self.intra_host_bw, self.inter_host_bw, self._bwd_compute_multiplier,
            self._weighted_feature_bwd_compute_multiplier, self._calibration,
        )

    @property
    def compute_device(self) -> str:
        return self._compute_device

    @property
    def devices(self) -> List[DeviceHardware]:
        return self._devices

    @property
    def world_size(self) -> int:
        return self._world_size

    @property
    def local_world_size(self) -> int:
        return self._local_world_size

    @property
    def intra_group_size(self) -> int:
        """Ranks that share the fast interconnect: ``local_world_size * pod_size`` (``L`` without a pod)."""
        return self._intra_group_size

    @property
    def ssd_mem_bw(self) -> float:
        return self._ssd_mem_bw

    @property
    def num_hosts(self) -> int:
        return self._world_size // self._local_world_size

    @property
    def hbm_mem_bw(self) -> float:
        return self._hbm_mem_bw

    @property
    def ddr_mem_bw(self) -> float:
        return self._ddr_mem_bw

    @property
    def hbm_to_ddr_mem_bw(self) -> float:
        return self._hbm_to_ddr_mem_bw

    @property
    def intra_host_bw(self) -> float:
        return self._comms_bandwidths.intra_host_bw

    @property
    def inter_host_bw(self) -> float:
        return self._comms_bandwidths.inter_host_bw

    @property
    def comms_bandwidths(self) -> GeneralizedCommsBandwidth:
        return self._comms_bandwidths

    @property
    def bwd_compute_multiplier(self) -> float:
        return self._bwd_compute_multiplier

    @property
    def weighted_feature_bwd_compute_multiplier(self) -> float:
        return self._weighted_feature_bwd_compute_multiplier

    @property
    def uneven_sharding_perf_multiplier(self) -> float:
        return self._uneven_sharding_perf_multiplier

    def set_calibration(self, calibration: Union[CpuCalibration, str]) -> "Topology":
        """Uses ``calibration`` (a ``CpuCalibration`` or the path of its JSON file) from now on; returns self."""
        self._apply_calibration(CpuCalibration.load(calibration) if isinstance(calibration, str) else calibration)
        return self

    def _apply_calibration(self, cal: Optional[CpuCalibration]) -> None:
        intra, inter, ddr, bwd = self._given_bw
        if cal is not None and self._compute_device == "cpu":
            intra = cal.intra_host_bw if intra == C.INTRA_NODE_BANDWIDTH else intra
            inter = cal.inter_host_bw if inter == C.CROSS_NODE_BANDWIDTH else inter
            ddr = cal.fused_kernel_bw if ddr == C.DDR_MEM_BW else ddr
            bwd = cal.bwd_compute_multiplier if bwd == C.BWD_COMPUTE_MULTIPLIER else bwd
        self._calibration = cal
        self._ddr_mem_bw = ddr
        self._bwd_compute_multiplier = bwd
        self._comms_bandwidths = self._given_comms or BasicCommsBandwidths(inter_host_bw=inter, intra_host_bw=intra)
        self.__dict__.pop("_kernel_bw_cache", None)

    @property
    def calibration(self) -> Optional[CpuCalibration]:
        """The CPU calibration in use (``None`` on accelerators without one)."""
        return self._calibration

    def kernel_bw(self, compute_kernel: str, caching_ratio: Optional[float] = None, prefetch_pipeline: bool = False) -> Optional[float]:
        """Lookup bandwidth (bytes/ms) of ``compute_kernel`` here; ``None`` if it cannot run on this device."""
        key = (compute_kernel, caching_ratio, prefetch_pipeline)
        cache = self.__dict__.setdefault("_kernel_bw_cache", {})
        if key in cache:
            return cache[key]
        if self._compute_device == "cpu" and self._calibration is not None:
            bw = self._calibration.kernel_bw(compute_kernel)
        else:
            bw = C.kernel_bw_lookup(
                self._compute_device, compute_kernel, self._hbm_mem_bw, self._ddr_mem_bw, self._hbm_to_ddr_mem_bw,
                caching_ratio, prefetch_pipeline, self._ssd_mem_bw,
            )
        cache[key] = bw
        return bw

    def __repr__(self) -> str:
        return (
            f"Topology(world_size={self._world_size}, local_world_size={self._local_world_size}, "
            f"compute_device={self._compute_device!r}, hbm_cap={self._devices[0].storage.hbm}, "
            f"ddr_cap={self._devices[0].storage.ddr}, intra_host_bw={self.intra_host_bw:.4g}, "
            f"inter_host_bw={self.inter_host_bw:.4g})"
        )

    def __deepcopy__(self, memo: Dict[int, Any]) -> "Topology":
        new = Topology.__new__(Topology)
        new.__dict__.update(self.__dict__)
        new._devices = [
            DeviceHardware(d.rank, Storage(d.storage.hbm, d.storage.ddr, d.storage.ssd), Perf(0.0, 0.0, 0.0, 0.0))
            for d in self._devices
        ]
        return new
