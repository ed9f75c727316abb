"""Planner types (TorchRec's ``torchrec.distributed.planner.types``).

A *sharding option* is one candidate way to shard one table: a sharding type, a compute kernel and
its shards (sizes, offsets; ranks once partitioned), each with an estimated ``Perf`` and ``Storage``.
The planner chooses one option per table (a *proposal*), places its shards on ranks (a *plan*) and
keeps the plan with the lowest rating.

Plug-in interfaces (each stage can be replaced): ``StorageReservation`` → ``Enumerator`` (with
``ShardEstimator``\\ s) → ``Proposer`` ⇄ ``Partitioner`` → ``PerfModel`` → ``Stats``.
"""

import abc
import copy
import hashlib
from dataclasses import dataclass, field
from enum import Enum, unique
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

import torch
from torch import nn

from recsys_lib.distributed.planner._hardware import (  # noqa: F401
    BasicCommsBandwidths,
    CollectiveType,
    CriticalPathEstimate,
    CustomTopologyData,
    DeviceHardware,
    GeneralizedCommsBandwidth,
    Perf,
    Storage,
    Topology,
)
from recsys_lib.distributed.planner.constants import POOLING_FACTOR
from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode
from recsys_lib.distributed._core.plan import CacheParams, KeyValueParams, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner._plan_context import (  # noqa: F401
    PlanDebugStats,
    PlanLoader,
    context_list,
    hash_sha256_str,
    hash_sha256_to_int,
    round_to_nearest,
)
from recsys_lib.distributed.planner._sharder_data import SharderData
from recsys_lib.distributed.planner._topology_config import (  # noqa: F401
    HardwareConfig,
    KernelConfig,
    TopologyConfigBase,
    TopologyFactory,
    TrainerConfig,
)
from recsys_lib.distributed.planner.constants import (  # noqa: F401  (TorchRec's types module lists these too)
    BATCH_SIZE,
    BWD_COMPUTE_MULTIPLIER,
    CROSS_NODE_BANDWIDTH,
    DDR_CAP,
    DDR_MEM_BW,
    HBM_CAP,
    HBM_MEM_BW,
    HBM_TO_DDR_MEM_BW,
    HUNDRED_GB,
    INTRA_NODE_BANDWIDTH,
    POOLING_FACTOR,
    SSD_CAP,
    SSD_MEM_BW,
    WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER,
)

SharderDataMap = Dict[str, SharderData]
from fbgemm_gpu.split_table_batched_embeddings_ops_common import BoundsCheckMode
from recsys_lib.distributed._core.plan import CacheParams, KeyValueParams, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.types import DataType


@unique
class PartitionByType(Enum):
    """How the partitioner places an option's shards."""

    DEVICE = "device"  # each shard on any device (table-wise, column-wise)
    HOST = "host"  # all shards within one host (table-row-wise, table-column-wise)
    UNIFORM = "uniform"  # shard i on rank i (row-wise, data-parallel)
    MULTI_HOST = "multi_host"  # one column block per host, rows within the host (grid)


@dataclass
class Shard:
    """One shard of a sharding option: ``size``/``offset`` as ``[rows, cols]``, estimates, and its rank."""

    size: List[int]
    offset: List[int]
    storage: Optional[Storage] = None
    perf: Optional[Perf] = None
    rank: Optional[int] = None

    def __hash__(self) -> int:
        return hash((tuple(self.size), tuple(self.offset), self.storage, self.perf, self.rank))


def _module_weighted(module: nn.Module) -> Optional[bool]:
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollectionInterface

    getter = getattr(module, "is_weighted", None)
    if callable(getter) and isinstance(module, EmbeddingBagCollectionInterface):
        return bool(getter())
    return None


class ShardingOption:
    """One candidate placement of one table (see the module docstring).

    Args:
        name: table name. tensor: the table's weight (a meta tensor is fine).
        module: ``(module FQN, module)`` owning the table. input_lengths: pooling factor per feature.
        batch_size: per-rank batch. sharding_type / compute_kernel: option values (strings).
        partition_by: a ``PartitionByType`` value. shards: the shards, in shard order.
    """

    def __init__(
        self,
        name: str,
        tensor: torch.Tensor,
        module: Tuple[str, nn.Module],
        input_lengths: List[float],
        batch_size: int,
        sharding_type: str,
        partition_by: str,
        compute_kernel: str,
        shards: List[Shard],
        cache_params: Optional[CacheParams] = None,
        enforce_hbm: Optional[bool] = None,
        stochastic_rounding: Optional[bool] = None,
        bounds_check_mode: Optional[BoundsCheckMode] = None,
        dependency: Optional[str] = None,
        is_pooled: Optional[bool] = None,
        feature_names: Optional[List[str]] = None,
        output_dtype: Optional[DataType] = None,
        key_value_params: Optional[KeyValueParams] = None,
        num_poolings: Optional[List[float]] = None,
    ) -> None:
        self.name = name
        self._tensor = tensor
        self._module = module
        self.input_lengths = input_lengths
        self.batch_size = batch_size
        self.sharding_type = sharding_type
        self.partition_by = partition_by
        self.compute_kernel = compute_kernel
        self.shards = shards
        self.cache_params = cache_params
        self.enforce_hbm = enforce_hbm
        self.stochastic_rounding = stochastic_rounding
        self.bounds_check_mode = bounds_check_mode
        self.dependency = dependency
        self._is_pooled = is_pooled
        self.feature_names = feature_names
        self.output_dtype = output_dtype
        self.key_value_params = key_value_params
        self.num_poolings = num_poolings
        child = module[1]
        mtype = type(child)
        self._module_type_key = mtype.__module__ + "." + mtype.__name__
        fp = getattr(child, "_feature_processor", None)
        fp_modules = getattr(fp, "feature_processor_modules", None)
        self._has_feature_processor = isinstance(fp_modules, nn.ModuleDict) and name in fp_modules
        # weighted inputs change the backward cost; known for bag collections, else set by the enumerator
        self.is_weighted: Optional[bool] = _module_weighted(child)

    @property
    def tensor(self) -> torch.Tensor:
        return self._tensor

    def table_shape(self) -> Tuple[int, int, int]:
        """``(rows, cols, bytes per element)`` of the whole table (read once from the tensor)."""
        shape = self.__dict__.get("_table_shape")
        if shape is None:
            t = self._tensor
            shape = (int(t.shape[0]), int(t.shape[1]), int(t.element_size()))
            self.__dict__["_table_shape"] = shape
        return shape

    @property
    def module(self) -> Tuple[str, nn.Module]:
        return self._module

    @property
    def module_type_key(self) -> str:
        """``sharder_name`` of the owning module's type (the key of its sharder)."""
        return self._module_type_key

    @property
    def has_feature_processor(self) -> bool:
        """True when the owning module runs a feature processor on this table's feature."""
        return self._has_feature_processor

    @property
    def fqn(self) -> str:
        """``"<module path>.<table>"`` (just the table name for the root module)."""
        return f"{self._module[0]}.{self.name}" if self._module[0] else self.name

    @property
    def path(self) -> str:
        return self._module[0]

    @property
    def cache_load_factor(self) -> Optional[float]:
        return None if self.cache_params is None else self.cache_params.load_factor

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @property
    def num_inputs(self) -> int:
        return len(self.input_lengths)

    def summary(self) -> "OptionSummary":
        """Totals and maxima over the shards' estimates, computed once and kept until
        :meth:`estimates_changed` (the estimators call it; call it after editing shard estimates by hand)."""
        cached = self.__dict__.get("_summary")
        if cached is None:
            totals: Dict[int, float] = {}
            perf = depth = 0.0
            hbm = ddr = max_hbm = max_ddr = 0
            for shard in self.shards:
                p = shard.perf
                if p is not None:
                    t = totals.get(id(p))
                    if t is None:
                        t = p.total
                        totals[id(p)] = t
                    perf += t
                    depth = t if t > depth else depth
                st = shard.storage
                if st is not None:
                    hbm += st.hbm
                    ddr += st.ddr
                    max_hbm = st.hbm if st.hbm > max_hbm else max_hbm
                    max_ddr = st.ddr if st.ddr > max_ddr else max_ddr
            cached = OptionSummary(perf, depth, hbm, ddr, max_hbm, max_ddr)
            self.__dict__["_summary"] = cached
        return cached

    def estimates_changed(self) -> None:
        """Drops the cached :meth:`summary` (shard ``perf``/``storage`` were replaced)."""
        self.__dict__.pop("_summary", None)

    @property
    def total_storage(self) -> Storage:
        sm = self.summary()
        return Storage(hbm=sm.hbm, ddr=sm.ddr)

    @property
    def total_perf(self) -> float:
        return self.summary().total_perf

    @property
    def is_pooled(self) -> bool:
        if self._is_pooled is None:
            self._is_pooled = ShardingOption.module_pooled(self._module[1], self.name)
        return self._is_pooled

    @staticmethod
    def module_pooled(module: nn.Module, sharding_option_name: str) -> bool:
        """False for sequence (unpooled) embedding modules such as ``EmbeddingCollection``."""
        from recsys_lib.modules.embedding_modules import EmbeddingBagCollectionInterface, EmbeddingCollectionInterface

        if isinstance(module, EmbeddingCollectionInterface):
            return False
        if isinstance(module, EmbeddingBagCollectionInterface):
            return True
        for child in module.modules():
            if isinstance(child, EmbeddingCollectionInterface):
                names = [c.name for c in child.embedding_configs()]
                if sharding_option_name in names:
                    return False
        return True

    def get_shards_assignment(self) -> List[Optional[int]]:
        return [shard.rank for shard in self.shards]

    def storage_hash(self) -> int:
        """A hash of what identifies this option before planning (stable across processes, 56 bits):
        ``fqn``, sharding type, kernel, cache load factor, number of shards. Stored plans are keyed by it."""
        key = f"{self.fqn}|{self.sharding_type}|{self.compute_kernel}|{self.cache_load_factor}|{self.num_shards}"
        return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=7).digest(), byteorder="big")

    def __hash__(self) -> int:
        return hash((self.fqn, self.sharding_type, self.compute_kernel, tuple(self.get_shards_assignment())))

    def placed_copy(self, ranks: List[int]) -> "ShardingOption":
        """A copy with its own shards placed on ``ranks`` (estimates and everything else shared)."""
        new = ShardingOption.__new__(ShardingOption)
        new.__dict__.update(self.__dict__)
        new.shards = [
            Shard(size=list(s.size), offset=list(s.offset), storage=s.storage, perf=s.perf, rank=r)
            for s, r in zip(self.shards, ranks)
        ]
        return new

    def __deepcopy__(self, memo: Optional[Dict[int, Any]]) -> "ShardingOption":
        new = ShardingOption.__new__(ShardingOption)
        for k, v in self.__dict__.items():
            # the table and its module are shared, never copied
            new.__dict__[k] = v if k in ("_tensor", "_module") else copy.deepcopy(v, memo)
        return new

    def __repr__(self) -> str:
        return (
            f"ShardingOption(fqn={self.fqn!r}, sharding_type={self.sharding_type!r}, "
            f"compute_kernel={self.compute_kernel!r}, ranks={self.get_shards_assignment()})"
        )


class OptionSummary(NamedTuple):
    """Aggregates of one option's shard estimates (perf in ms, storage in bytes)."""

    total_perf: float
    max_shard_perf: float
    hbm: int
    ddr: int
    max_shard_hbm: int
    max_shard_ddr: int


@dataclass
class ParameterConstraints:
    """Per-table planner constraints, keyed by table name in the planner's ``constraints`` dict."""

    sharding_types: Optional[List[str]] = None
    compute_kernels: Optional[List[str]] = None
    min_partition: Optional[int] = None
    pooling_factors: List[float] = field(default_factory=lambda: [POOLING_FACTOR])
    num_poolings: Optional[List[float]] = None
    batch_sizes: Optional[List[int]] = None
    is_weighted: bool = False
    cache_params: Optional[CacheParams] = None
    enforce_hbm: Optional[bool] = None
    stochastic_rounding: Optional[bool] = None
    bounds_check_mode: Optional[BoundsCheckMode] = None
    feature_names: Optional[List[str]] = None
    output_dtype: Optional[DataType] = None
    device_group: Optional[str] = None
    key_value_params: Optional[KeyValueParams] = None
    use_virtual_table: bool = False

    def __post_init__(self) -> None:
        if self.min_partition is not None and self.min_partition <= 0:
            raise ValueError(f"ParameterConstraints.min_partition must be > 0, got {self.min_partition}")
        if any(p < 0 for p in self.pooling_factors):
            raise ValueError(f"ParameterConstraints.pooling_factors must be >= 0, got {self.pooling_factors}")
        for name in ("num_poolings", "batch_sizes"):
            values = getattr(self, name)
            if values is not None and len(values) != len(self.pooling_factors):
                raise ValueError(
                    f"ParameterConstraints.{name} has {len(values)} entries, pooling_factors {len(self.pooling_factors)}"
                )

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, k)) for k in self.__dataclass_fields__))


@unique
class PlannerErrorType(Enum):
    INSUFFICIENT_STORAGE = "insufficient_storage"
    STRICT_CONSTRAINTS = "strict_constraints"
    PARTITION = "partition"
    OTHER = "other"
    PLANNER_INPUT_CONTEXT_MISMATCH = "planner_input_context_mismatch"
    PLAN_LOADING_FAILED = "plan_loading_failed"
    INVALID_RANK_ASSIGNMENT = "invalid_rank_assignment"
    INPUT_VALIDATION = "input_validation"
    MISSING_MODULE_IN_PLAN = "missing_module_in_plan"
    INVALID_COMPUTE_KERNEL = "invalid_compute_kernel"


class PlannerError(Exception):
    """The planner cannot produce a plan; ``error_type`` says why."""

    def __init__(self, message: str, error_type: PlannerErrorType = PlannerErrorType.OTHER) -> None:
        self.error_type = error_type
        super().__init__(message)


class StorageReservation(abc.ABC):
    """Takes memory off every device for what is not a table (dense parts, inputs, headroom)."""

    @abc.abstractmethod
    def reserve(
        self,
        topology: Topology,
        batch_size: int,
        module: nn.Module,
        sharders: List[ModuleSharder[nn.Module]],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
    ) -> Topology:
        ...

    @property
    @abc.abstractmethod
    def last_reserved_topology(self) -> Optional[Topology]:
        ...


class PerfModel(abc.ABC):
    """Rates a placed plan (lower is better)."""

    @abc.abstractmethod
    def rate(self, plan: List[ShardingOption]) -> float:
        ...


class ShardEstimator(abc.ABC):
    """Fills ``shard.perf`` or ``shard.storage`` of sharding options."""

    @abc.abstractmethod
    def __init__(self, topology: Topology, constraints: Optional[Dict[str, ParameterConstraints]] = None) -> None:
        ...

    @abc.abstractmethod
    def estimate(self, sharding_options: List[ShardingOption], sharder_data_map: Dict[str, SharderData]) -> None:
        """Fills the options' shard estimates; ``sharder_data_map`` is keyed by ``sharder_name(module type)``."""


class Enumerator(abc.ABC):
    """Lists every sharding option of every shardable table (the search space)."""

    @abc.abstractmethod
    def __init__(
        self,
        topology: Topology,
        batch_size: int = 512,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        estimator: Optional[Union[ShardEstimator, List[ShardEstimator]]] = None,
    ) -> None:
        ...

    @abc.abstractmethod
    def enumerate(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> List[ShardingOption]:
        ...

    @abc.abstractmethod
    def populate_estimates(self, sharding_options: List[ShardingOption]) -> None:
        ...


class Proposer(abc.ABC):
    """Proposes one option per table; learns from the partitioner's and perf model's feedback."""

    @abc.abstractmethod
    def load(self, search_space: List[ShardingOption], enumerator: Optional[Enumerator] = None) -> None:
        ...

    @abc.abstractmethod
    def feedback(
        self,
        partitionable: bool,
        plan: Optional[List[ShardingOption]] = None,
        perf_rating: Optional[float] = None,
        storage_constraint: Optional[Topology] = None,
    ) -> None:
        ...

    @abc.abstractmethod
    def propose(self) -> Optional[List[ShardingOption]]:
        ...


class Partitioner(abc.ABC):
    """Assigns every shard of a proposal a rank (sets ``shard.rank``), or raises ``PlannerError``."""

    @abc.abstractmethod
    def partition(self, proposal: List[ShardingOption], storage_constraint: Topology) -> List[ShardingOption]:
        ...


class Stats(abc.ABC):
    """Reports a finished plan."""

    @abc.abstractmethod
    def log(
        self,
        sharding_plan: ShardingPlan,
        topology: Topology,
        batch_size: int,
        storage_reservation: StorageReservation,
        num_proposals: int,
        num_plans: int,
        run_time: float,
        best_plan: List[ShardingOption],
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        enumerator: Optional[Enumerator] = None,
        debug: bool = False,
        debug_stats: Optional[PlanDebugStats] = None,
    ) -> None:
        ...


def hash_planner_context_inputs(
    topology: Topology,
    batch_size: int,
    enumerator: Enumerator,
    storage_reservation: StorageReservation,
    constraints: Optional[Dict[str, ParameterConstraints]],
    hash_function: Callable[[List[Any]], int] = hash_sha256_to_int,
) -> int:
    """Fingerprint (int) of everything a plan depends on: the topology (memory rounded to 100 GB),
    batch size, the enumerator's stored search space, the reservation and its reserved topology, and
    the constraints. Raises ``ValueError`` before ``enumerate``/``reserve`` have run."""
    return hash_function(context_list(topology, batch_size, enumerator, storage_reservation, constraints))


def hash_planner_context_inputs_str(
    topology: Topology,
    batch_size: int,
    enumerator: Enumerator,
    storage_reservation: StorageReservation,
    constraints: Optional[Dict[str, ParameterConstraints]],
    hash_function: Callable[[List[Any]], str] = hash_sha256_str,
) -> str:
    """:func:`hash_planner_context_inputs` as a hex string."""
    return hash_function(context_list(topology, batch_size, enumerator, storage_reservation, constraints))
