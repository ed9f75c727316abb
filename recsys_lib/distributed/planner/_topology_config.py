"""Building a ``Topology`` from three configs: ``TrainerConfig`` > ``HardwareConfig`` > defaults.

Re-exported by ``planner.types`` (TorchRec's path). Each value is taken from the first config that
sets it::

    value         TrainerConfig            HardwareConfig                  default
    hbm/ddr/ssd   *_cap_bytes (dry run:    *_cap_bytes                     Topology's
                  dry_run_*_bytes)
    mem bw        -                        *_mem_bw, only if KernelConfig  TorchRec's constants
                                           .use_hardware_based_bandwidth
    host bw       -                        intra/inter_host_bw, same rule  (or KernelConfig's
                                                                           generalized_comms_bandwidths)

Example::

    topo = TopologyFactory.create_topology(TrainerConfig(world_size=4, local_world_size=2),
                                           kernel_config=KernelConfig(compute_device="cpu"))
    assert topo.world_size == 4 and topo.local_world_size == 2
"""

from recsys_lib._public import public_at
import abc
import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from recsys_lib.distributed.planner import constants as C
from recsys_lib.distributed.planner._hardware import GeneralizedCommsBandwidth, Topology

logger = logging.getLogger(__name__)

_ACCELERATORS = ("cuda", "mtia")
_DEVICES = ("cuda", "mtia", "cpu")


@public_at("recsys_lib.distributed.planner.types")
class TopologyConfigBase(abc.ABC):
    """A topology config: typed fields plus a free ``additional_params`` dict."""

    additional_params: Dict[str, Any]

    def get_param(self, key: str, default: Any = None) -> Any:
        return self.additional_params.get(key, default)

    def has_param(self, key: str) -> bool:
        return key in self.additional_params

    @abc.abstractmethod
    def validate(self) -> None:
        """Raises ``ValueError`` (or warns) on invalid values."""


@dataclass(frozen=True)
@public_at("recsys_lib.distributed.planner.types")
class HardwareConfig(TopologyConfigBase):
    """What the hardware offers (detected or looked up): capacities in bytes, bandwidths in bytes/ms."""

    hbm_cap_bytes: Optional[int] = None
    ddr_cap_bytes: Optional[int] = None
    ssd_cap_bytes: Optional[int] = None
    intra_host_bw: Optional[float] = None
    inter_host_bw: Optional[float] = None
    hbm_mem_bw: Optional[float] = None
    ddr_mem_bw: Optional[float] = None
    hbm_to_ddr_mem_bw: Optional[float] = None
    ssd_mem_bw: Optional[float] = None
    additional_params: Dict[str, Any] = field(default_factory=dict)

    def get_validation_issues(self, compute_device: Optional[str] = None) -> List[str]:
        """Values that cannot be right (non-positive sizes or bandwidths, intra-host slower than
        inter-host). HBM is checked only for ``compute_device`` ``"cuda"``/``"mtia"``."""
        issues: List[str] = []
        if compute_device in _ACCELERATORS and self.hbm_cap_bytes is not None and self.hbm_cap_bytes <= 0:
            issues.append(f"hbm_cap_bytes={self.hbm_cap_bytes} is non-positive")
        if self.ddr_cap_bytes is not None and self.ddr_cap_bytes <= 0:
            issues.append(f"ddr_cap_bytes={self.ddr_cap_bytes} is non-positive")
        if self.ssd_cap_bytes is not None and self.ssd_cap_bytes < 0:
            issues.append(f"ssd_cap_bytes={self.ssd_cap_bytes} is negative")
        for name in ("intra_host_bw", "inter_host_bw", "hbm_mem_bw", "ddr_mem_bw", "hbm_to_ddr_mem_bw", "ssd_mem_bw"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                issues.append(f"{name}={value} is non-positive")
        if self.intra_host_bw is not None and self.inter_host_bw is not None and self.intra_host_bw < self.inter_host_bw:
            issues.append(f"intra_host_bw ({self.intra_host_bw:.0f}) < inter_host_bw ({self.inter_host_bw:.0f})")
        return issues

    def validate(self, compute_device: Optional[str] = None) -> None:
        """Logs one warning listing :meth:`get_validation_issues` (never raises: a trainer value may
        override a bad detected one)."""
        issues = self.get_validation_issues(compute_device)
        if issues:
            logger.warning("HardwareConfig validation: " + "; ".join(issues))


@dataclass(frozen=True)
@public_at("recsys_lib.distributed.planner.types")
class TrainerConfig(TopologyConfigBase):
    """What the training job asks for; wins over :class:`HardwareConfig`. ``world_size`` is required by
    :meth:`TopologyFactory.create_topology`; ``additional_params["custom_topology_data"]`` is passed on."""

    world_size: Optional[int] = None
    local_world_size: Optional[int] = None
    hbm_cap_bytes: Optional[int] = None
    ddr_cap_bytes: Optional[int] = None
    ssd_cap_bytes: Optional[int] = None
    is_dry_run: bool = False
    dry_run_hbm_bytes: Optional[int] = None
    dry_run_ddr_bytes: Optional[int] = None
    pod_size: Optional[int] = None
    additional_params: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.world_size is None:
            raise ValueError("TrainerConfig.world_size must be provided")
        if self.pod_size is not None and self.pod_size > self.world_size:
            raise ValueError(f"TrainerConfig.pod_size ({self.pod_size}) > world_size ({self.world_size})")


@dataclass(frozen=True)
@public_at("recsys_lib.distributed.planner.types")
class KernelConfig(TopologyConfigBase):
    """Device and perf-model multipliers; ``use_hardware_based_bandwidth`` takes bandwidths from the
    :class:`HardwareConfig` instead of TorchRec's constants."""

    compute_device: str = "cuda"
    bwd_compute_multiplier: float = C.BWD_COMPUTE_MULTIPLIER
    weighted_feature_bwd_compute_multiplier: float = C.WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER
    uneven_sharding_perf_multiplier: float = 1.0
    use_hardware_based_bandwidth: bool = False
    generalized_comms_bandwidths: Optional[GeneralizedCommsBandwidth] = None
    additional_params: Dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.compute_device not in _DEVICES:
            raise ValueError(f"KernelConfig.compute_device must be one of {_DEVICES}, got {self.compute_device!r}")


def _first(*values: Optional[Any]) -> Optional[Any]:
    for v in values:
        if v is not None:
            return v
    return None


@public_at("recsys_lib.distributed.planner.types")
class TopologyFactory:
    """Builds a :class:`Topology` from the three configs (see the module docstring)."""

    @staticmethod
    def create_topology(
        trainer_config: TrainerConfig,
        hardware_config: Optional[HardwareConfig] = None,
        kernel_config: Optional[KernelConfig] = None,
    ) -> Topology:
        hw = hardware_config or HardwareConfig()
        kernel = kernel_config or KernelConfig()
        trainer_config.validate()
        hw.validate(compute_device=kernel.compute_device)
        kernel.validate()
        kwargs: Dict[str, Any] = {
            "world_size": trainer_config.world_size,
            "compute_device": kernel.compute_device,
            "bwd_compute_multiplier": kernel.bwd_compute_multiplier,
            "weighted_feature_bwd_compute_multiplier": kernel.weighted_feature_bwd_compute_multiplier,
            "uneven_sharding_perf_multiplier": kernel.uneven_sharding_perf_multiplier,
            "local_world_size": trainer_config.local_world_size,
            "pod_size": trainer_config.pod_size,
            "hbm_cap": _first(trainer_config.hbm_cap_bytes, hw.hbm_cap_bytes),
            "ddr_cap": _first(trainer_config.ddr_cap_bytes, hw.ddr_cap_bytes),
            "ssd_cap": _first(trainer_config.ssd_cap_bytes, hw.ssd_cap_bytes),
            "custom_topology_data": trainer_config.get_param("custom_topology_data"),
            "created_by_factory": True,
        }
        if trainer_config.is_dry_run:
            if trainer_config.dry_run_hbm_bytes is not None:
                kwargs["hbm_cap"] = trainer_config.dry_run_hbm_bytes
            if trainer_config.dry_run_ddr_bytes is not None:
                kwargs["ddr_cap"] = trainer_config.dry_run_ddr_bytes
        use_hw = kernel.use_hardware_based_bandwidth
        kwargs["hbm_mem_bw"] = _first(hw.hbm_mem_bw if use_hw else None, C.HBM_MEM_BW)
        kwargs["ddr_mem_bw"] = _first(hw.ddr_mem_bw if use_hw else None, C.DDR_MEM_BW)
        kwargs["ssd_mem_bw"] = _first(hw.ssd_mem_bw if use_hw else None, C.SSD_MEM_BW)
        kwargs["hbm_to_ddr_mem_bw"] = _first(hw.hbm_to_ddr_mem_bw if use_hw else None, C.HBM_TO_DDR_MEM_BW)
        if kernel.generalized_comms_bandwidths is not None:
            kwargs["generalized_comms_bandwidths"] = kernel.generalized_comms_bandwidths
        else:
            kwargs["intra_host_bw"] = _first(hw.intra_host_bw if use_hw else None, C.INTRA_NODE_BANDWIDTH)
            kwargs["inter_host_bw"] = _first(hw.inter_host_bw if use_hw else None, C.CROSS_NODE_BANDWIDTH)
        return Topology(**kwargs)
