"""Values of the configurable perf estimator (TorchRec's ``planner.estimator.types``).

A shard's compute time is a weighted sum of byte counts over the lookup bandwidth::

    fwd_compute = (a * input_read + b * lookup + c * output_write + d * hash_size * D * elem) / device_bw

with ``(a, b, c, d)`` a :class:`PerfCoefficient` (all 1, 1, 1, 0 by default) chosen per sharding type
(and kernel) by :class:`PerfCoefficientConfig`; :class:`HardwarePerfConfig` holds the bandwidths and
coefficients of one kind of hardware; :class:`ShardPerfContext` the plain numbers of one shard.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, FrozenSet, List, Optional, Tuple

from recsys_lib.distributed.planner._sharder_data import SharderData
from recsys_lib.distributed.planner.constants import (  # noqa: F401  (TorchRec lists these here)
    BIGINT_DTYPE,
    BWD_COMPUTE_MULTIPLIER,
    DDR_MEM_BW,
    HBM_MEM_BW,
    HBM_TO_DDR_MEM_BW,
    INTRA_NODE_BANDWIDTH,
    CROSS_NODE_BANDWIDTH,
    SSD_MEM_BW,
    WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER,
    WEIGHTED_KERNEL_MULTIPLIER,
    kernel_bw_lookup,
)
from recsys_lib.distributed.planner.types import ParameterConstraints, ShardingOption
from recsys_lib.distributed.planner._hardware import Perf, Topology
from recsys_lib.types import DataType
from recsys_lib.distributed.planner.estimator.annotations import (  # noqa: F401,E402
    get_bwd_coefficient,
    get_fwd_coefficient,
    get_prefetch_coefficient,
)
from recsys_lib.distributed.planner._hardware import GeneralizedCommsBandwidth  # noqa: F401
from recsys_lib.distributed.planner.types import PlannerError  # noqa: F401
from recsys_lib.distributed.planner.utils import (  # noqa: F401,E402
    extract_comm_data_type_size,
    get_num_poolings,
    is_prefetch_pipelined,
)

DATA_TYPE_NUM_BITS: Dict[DataType, int] = {
    DataType.FP32: 32, DataType.FP16: 16, DataType.BF16: 16, DataType.INT8: 8, DataType.UINT8: 8,
    DataType.INT4: 4, DataType.INT2: 2,
}


@dataclass
class PerfCoefficient:
    """Weights of the byte counts in a compute estimate (see the module docstring)."""

    input_read_size_multiplier: float = 1.0
    lookup_size_multiplier: float = 1.0
    embedding_output_multiplier: float = 1.0
    hash_size_multiplier: float = 0.0


@dataclass
class EstimatorPerfCoefficients:
    """Forward coefficients, and backward ones (``None``: backward = forward x bwd multiplier)."""

    fwd: PerfCoefficient = field(default_factory=PerfCoefficient)
    bwd: Optional[PerfCoefficient] = None


@dataclass
class PrefetchCoefficients:
    """Linear model of a UVM-cache prefetch: ms per lookup, per unique lookup, per fetched byte."""

    expected_num_lookups_coefficient: float = 0.0
    expected_num_unique_lookups_coefficient: float = 0.0
    expected_size_cache_fetches_coefficient: float = 0.0


# sharding types that use another type's coefficients
_COEFFICIENT_ALIASES = {"table_column_wise": "column_wise", "grid_shard": "table_row_wise"}


@dataclass
class PerfCoefficientConfig:
    """Coefficients per sharding type (``by_kernel[(sharding_type, kernel)]`` wins; then the type's
    field; then ``default``) and the multipliers of the backward pass."""

    table_wise: Optional[EstimatorPerfCoefficients] = None
    row_wise: Optional[EstimatorPerfCoefficients] = None
    table_row_wise: Optional[EstimatorPerfCoefficients] = None
    data_parallel: Optional[EstimatorPerfCoefficients] = None
    column_wise: Optional[EstimatorPerfCoefficients] = None
    by_kernel: Dict[Tuple[str, str], EstimatorPerfCoefficients] = field(default_factory=dict)
    default: EstimatorPerfCoefficients = field(default_factory=EstimatorPerfCoefficients)
    bwd_compute_multiplier: float = BWD_COMPUTE_MULTIPLIER
    weighted_kernel_multiplier: float = WEIGHTED_KERNEL_MULTIPLIER
    weighted_feature_bwd_compute_multiplier: float = WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER
    prefetch: Optional[PrefetchCoefficients] = None

    def get_coefficients(self, sharding_type: str, compute_kernel: Optional[str] = None) -> EstimatorPerfCoefficients:
        if compute_kernel is not None and (sharding_type, compute_kernel) in self.by_kernel:
            return self.by_kernel[(sharding_type, compute_kernel)]
        own = getattr(self, _COEFFICIENT_ALIASES.get(sharding_type, sharding_type), None)
        return own if isinstance(own, EstimatorPerfCoefficients) else self.default


class HardwarePerfConfig:
    """Bandwidths (bytes/ms) and coefficients of one kind of hardware.

    Subclass it and set class attributes (or use the decorators of ``estimator.annotations``); ``None``
    bandwidths come from the ``Topology``.
    """

    name: str = "default"
    hbm_mem_bw: float = HBM_MEM_BW
    ddr_mem_bw: float = DDR_MEM_BW
    ssd_mem_bw: float = SSD_MEM_BW
    device_bw: Optional[float] = None
    hbm_to_ddr_mem_bw: Optional[float] = None
    intra_host_bw: Optional[float] = None
    inter_host_bw: Optional[float] = None
    kernel_device_bandwidths: Dict[Tuple[Optional[str], Optional[str]], Optional[float]] = {}
    _supported_sharding_types: Optional[FrozenSet[str]] = None

    @property
    def coefficients(self) -> PerfCoefficientConfig:
        return PerfCoefficientConfig()

    def get_bwd_compute_multiplier(self, ctx_multiplier: float) -> float:
        """The topology's multiplier (``ctx_multiplier``) unless a subclass decides otherwise."""
        return ctx_multiplier

    def get_weighted_feature_bwd_compute_multiplier(self, ctx_multiplier: float) -> float:
        return ctx_multiplier

    def get_coefficients_for_sharding(self, sharding_type: str, compute_kernel: Optional[str] = None) -> EstimatorPerfCoefficients:
        return self.coefficients.get_coefficients(sharding_type, compute_kernel)

    def is_sharding_type_supported(self, sharding_type: str) -> bool:
        return self._supported_sharding_types is None or sharding_type in self._supported_sharding_types

    def validate_sharding_type(self, sharding_type: str) -> None:
        if not self.is_sharding_type_supported(sharding_type):
            raise ValueError(
                f"{type(self).__name__} ({self.name!r}) does not rate sharding type {sharding_type!r}; "
                f"supported: {sorted(self._supported_sharding_types or [])}"
            )

    def post_process_perfs(
        self, shard_perfs: List[Perf], shard_sizes: List[List[int]], sharding_type: str,
        uneven_sharding_perf_multiplier: float = 1.0,
    ) -> List[Perf]:
        """Scales the compute of shards when their sizes differ (uneven row splits) by the multiplier."""
        if uneven_sharding_perf_multiplier == 1.0 or len({tuple(s) for s in shard_sizes}) <= 1:
            return shard_perfs
        m = uneven_sharding_perf_multiplier
        return [
            Perf(p.fwd_compute * m, p.fwd_comms, p.bwd_compute * m, p.bwd_comms, p.input_dist_comms, p.prefetch_compute)
            for p in shard_perfs
        ]

    def get_device_bw(
        self, compute_device: str, compute_kernel: str, hbm_mem_bw: float, ddr_mem_bw: float, ssd_mem_bw: float,
        hbm_to_ddr_mem_bw: float, caching_ratio: Optional[float] = None, prefetch_pipeline: bool = False,
    ) -> Optional[float]:
        """Lookup bandwidth: a per-(device, kernel) override, else ``device_bw``, else ``kernel_bw_lookup``."""
        table = self.kernel_device_bandwidths or {}
        for key in ((compute_device, compute_kernel), (None, compute_kernel), (compute_device, None)):
            if key in table:
                return table[key]
        if self.device_bw is not None:
            return self.device_bw
        return kernel_bw_lookup(compute_device, compute_kernel, hbm_mem_bw, ddr_mem_bw, hbm_to_ddr_mem_bw,
                                caching_ratio, prefetch_pipeline, ssd_mem_bw)


@dataclass
class ShardPerfContext:
    """The plain numbers of one shard that the evaluators read (``hash_size`` rows x ``emb_dim`` cols)."""

    sharding_type: str = ""
    compute_kernel: str = ""
    hash_size: int = 0
    emb_dim: int = 0
    batch_sizes: List[int] = field(default_factory=list)
    num_poolings: List[float] = field(default_factory=list)
    input_lengths: List[float] = field(default_factory=list)
    world_size: int = 1
    local_world_size: int = 1
    intra_group_size: int = 1
    input_data_type_size: float = BIGINT_DTYPE
    table_data_type_size: float = 4.0
    output_data_type_size: float = 4.0
    fwd_a2a_comm_data_type_size: float = 4.0
    bwd_a2a_comm_data_type_size: float = 4.0
    fwd_sr_comm_data_type_size: float = 4.0
    bwd_sr_comm_data_type_size: float = 4.0
    device_bw: float = HBM_MEM_BW
    hbm_to_ddr_mem_bw: float = HBM_MEM_BW
    intra_host_bw: float = 0.0
    inter_host_bw: float = 0.0
    comms_bandwidths: Optional[Any] = None
    is_inference: bool = False
    is_weighted: bool = False
    is_pooled: bool = True
    has_feature_processor: bool = False
    bwd_compute_multiplier: float = BWD_COMPUTE_MULTIPLIER
    weighted_feature_bwd_compute_multiplier: float = WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER
    use_linear_regression_prefetch_estimate: bool = False
    use_batch_inputs_for_expected_cache_fetches: bool = False
    caching_ratio: Optional[float] = None
    table_name: str = ""
    hash_size_for_clamping: int = 0
    cache_stats_expected_lookups: Optional[float] = None
    expected_miss_rate: Optional[float] = None

    @property
    def num_hosts(self) -> int:
        return max(self.world_size // max(self.local_world_size, 1), 1)

    @property
    def num_twrw_groups(self) -> int:
        return max(self.world_size // max(self.intra_group_size, 1), 1)

    @property
    def batch_inputs(self) -> float:
        """Ids per rank-batch: ``sum_f L_f * N_f * B_f``."""
        return sum(x * y * b for x, y, b in zip(self.input_lengths, self.num_poolings, self.batch_sizes))

    @property
    def batch_outputs(self) -> float:
        """Output vectors per rank-batch: ``sum_f N_f * B_f`` (pooled) or one per id (sequence)."""
        if not self.is_pooled:
            return self.batch_inputs
        return sum(y * b for y, b in zip(self.num_poolings, self.batch_sizes))

    @property
    def is_uvm_caching(self) -> bool:
        return self.compute_kernel in ("fused_uvm_caching", "quant_uvm_caching")

    @classmethod
    def build_shard_perf_contexts(
        cls,
        config: HardwarePerfConfig,
        shard_sizes: List[List[int]],
        sharding_option: ShardingOption,
        topology: Topology,
        constraints: Optional[Dict[str, ParameterConstraints]],
        sharder_data: SharderData,
        is_inference: bool = False,
        use_batch_inputs_for_expected_cache_fetches: bool = False,
        use_linear_regression_prefetch_estimate: bool = False,
    ) -> List["ShardPerfContext"]:
        """One context per shard size of ``sharding_option`` on ``topology``."""
        from recsys_lib.distributed.planner.utils import (
            extract_comm_data_type_size,
            get_num_poolings,
            is_prefetch_pipelined,
        )

        so = sharding_option
        pc = constraints.get(so.name) if constraints else None
        n = len(so.input_lengths)
        batch_sizes = list(pc.batch_sizes) if pc is not None and pc.batch_sizes else [so.batch_size] * n
        caching = so.cache_load_factor if so.cache_load_factor is not None else sharder_data.fused_params.get("cache_load_factor")
        prefetch = is_prefetch_pipelined(so, sharder_data)
        bw = config.get_device_bw(
            topology.compute_device, so.compute_kernel, topology.hbm_mem_bw, topology.ddr_mem_bw, topology.ssd_mem_bw, topology.hbm_to_ddr_mem_bw, caching, prefetch,
        )
        if bw is None:
            raise ValueError(f"no lookup bandwidth for kernel {so.compute_kernel!r} on {topology.compute_device!r}")
        fa2a, ba2a, fsr, bsr = extract_comm_data_type_size(so, sharder_data)
        out_size = DATA_TYPE_NUM_BITS[so.output_dtype] / 8 if so.output_dtype is not None else float(so.tensor.element_size())
        bws = topology.comms_bandwidths
        stats = getattr(so.cache_params, "stats", None) if so.cache_params is not None else None
        return [
            cls(
                sharding_type=so.sharding_type, compute_kernel=so.compute_kernel, hash_size=int(size[0]),
                emb_dim=int(size[1]), batch_sizes=batch_sizes, num_poolings=list(get_num_poolings(constraints, so)),
                input_lengths=list(so.input_lengths), world_size=topology.world_size,
                local_world_size=topology.local_world_size, intra_group_size=topology.intra_group_size,
                input_data_type_size=float(BIGINT_DTYPE), table_data_type_size=float(so.tensor.element_size()),
                output_data_type_size=float(out_size), fwd_a2a_comm_data_type_size=fa2a,
                bwd_a2a_comm_data_type_size=ba2a, fwd_sr_comm_data_type_size=fsr, bwd_sr_comm_data_type_size=bsr,
                device_bw=float(bw), hbm_to_ddr_mem_bw=topology.hbm_to_ddr_mem_bw,
                intra_host_bw=config.intra_host_bw or bws.intra_host_bw,
                inter_host_bw=config.inter_host_bw or bws.inter_host_bw, comms_bandwidths=bws,
                is_inference=is_inference, is_weighted=bool(so.is_weighted), is_pooled=so.is_pooled,
                has_feature_processor=so.has_feature_processor,
                bwd_compute_multiplier=config.get_bwd_compute_multiplier(topology.bwd_compute_multiplier),
                weighted_feature_bwd_compute_multiplier=config.get_weighted_feature_bwd_compute_multiplier(
                    topology.weighted_feature_bwd_compute_multiplier
                ),
                use_linear_regression_prefetch_estimate=use_linear_regression_prefetch_estimate,
                use_batch_inputs_for_expected_cache_fetches=use_batch_inputs_for_expected_cache_fetches,
                caching_ratio=caching, table_name=so.name, hash_size_for_clamping=int(so.tensor.shape[0]),
                cache_stats_expected_lookups=getattr(stats, "expected_lookups", None),
                expected_miss_rate=stats.expected_miss_rate(caching) if stats is not None and caching else None,
            )
            for size in [list(s) for s in shard_sizes]
        ]
