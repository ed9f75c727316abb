"""The search space: every (table, sharding type, compute kernel) the sharder and the constraints allow.

For each module a sharder handles (matched by exact type, searched from the root down; a matched
module's children are not searched), and each of its shardable tables::

    sharding types = sharder.sharding_types(device)            ∩ constraints.sharding_types
    kernels        = sharder.compute_kernels(type, device)     ∩ constraints.compute_kernels
                     (minus kernels the topology cannot rate, e.g. UVM on cpu)
    shards         = strategy_for(type).shard_sizes_and_offsets(rows, cols, W, L, min_partition)

Each option's shards then get perf and storage from the estimators.
"""

import logging
from typing import Dict, List, Optional, Tuple, Union

from torch import nn

from recsys_lib.distributed.planner.constants import POOLING_FACTOR
from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
from recsys_lib.distributed.planner.constants import DEFAULT_PERF_ESTIMATOR, POOLING_FACTOR  # noqa: F401
from recsys_lib.distributed.planner.shard_estimators import EmbeddingPerfEstimator, EmbeddingStorageEstimator
from recsys_lib.distributed.planner.types import (
    Enumerator,
    ParameterConstraints,
    PlannerError,
    PlannerErrorType,
    Shard,
    ShardEstimator,
    SharderDataMap,
    ShardingOption,
)
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import sharder_name
from recsys_lib.distributed.sharding.strategy import sharding_types_where, strategy_for
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner.utils import build_sharder_data_map, sharder_name
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed.planner.types import PartitionByType  # noqa: F401,E402

logger = logging.getLogger(__name__)

# kernels enumerated only when a table's constraints name them
GUARDED_COMPUTE_KERNELS = frozenset(
    {
        EmbeddingComputeKernel.KEY_VALUE,
        EmbeddingComputeKernel.SSD_VIRTUAL_TABLE,
        EmbeddingComputeKernel.DRAM_VIRTUAL_TABLE,
        EmbeddingComputeKernel.DRAM_SSD_VIRTUAL_TABLE,
    }
)
_GUARDED_KERNEL_VALUES = frozenset(k.value for k in GUARDED_COMPUTE_KERNELS)
# sharding types of feature-processed modules enumerated only when a table's constraints name them
GUARDED_SHARDING_TYPES_FOR_FP_MODULES = frozenset(sharding_types_where(lambda s: s.splits_rows))


def get_partition_by_type(sharding_type: str) -> str:
    """``PartitionByType`` value of a sharding type, from the strategy registry."""
    return strategy_for(sharding_type).partition_by.value


def _table_features(module: nn.Module) -> Dict[str, List[str]]:
    """Table name → feature names, from the module's embedding configs (empty if it has none)."""
    for attr in ("embedding_bag_configs", "embedding_configs"):
        getter = getattr(module, attr, None)
        if callable(getter):
            try:
                return {c.name: list(c.feature_names) for c in getter()}
            except (TypeError, AttributeError):
                continue
    return {}


def _is_weighted(module: nn.Module) -> bool:
    getter = getattr(module, "is_weighted", None)
    try:
        return bool(getter()) if callable(getter) else False
    except TypeError:
        return False


class _NoShardingOptionError(PlannerError, RuntimeError):
    """No (sharding type, kernel) left for a table; a ``RuntimeError`` too, as TorchRec raises one."""


def _check_constraints(
    constraints: Dict[str, ParameterConstraints], modules: List[Tuple[str, nn.Module, ModuleSharder[nn.Module]]]
) -> None:
    """Constraints TorchRec silently ignores (see docs/deviations.md, "Planner"): a key naming no
    shardable table is logged as a warning (one constraints dict is often shared by several models); a
    ``pooling_factors`` list longer than the table's features raises ``PlannerError(INPUT_VALIDATION)``."""
    if not constraints:
        return
    tables: Dict[str, List[str]] = {}
    for _, child, sharder in modules:
        features = _table_features(child)
        for name in sharder.shardable_parameters(child):
            tables[name] = features.get(name, [])
    unknown = sorted(k for k in constraints if k not in tables)
    if unknown:
        logger.warning(
            "planner constraints name tables that no sharder can shard; they are ignored: %s (shardable tables: %s)",
            unknown, sorted(tables),
        )
    for name, pc in constraints.items():
        features = pc.feature_names or tables.get(name)
        if features and len(pc.pooling_factors) > len(features):
            raise PlannerError(
                f"ParameterConstraints for table {name!r}: pooling_factors has {len(pc.pooling_factors)} entries "
                f"but the table has {len(features)} feature(s) {list(features)}; give at most one per feature",
                PlannerErrorType.INPUT_VALIDATION,
            )


class EmbeddingEnumerator(Enumerator):
    """Builds the search space (see the module docstring).

    Args:
        topology: the target machines.
        batch_size: per-rank batch size.
        constraints: ``{table name: ParameterConstraints}``.
        estimator: estimator(s) filling perf and storage (default: perf then storage estimator).
        use_exact_enumerate_order: keep module/table order exactly as found (the default order is the
            same here; accepted for compatibility).
    """

    def __init__(
        self,
        topology: Topology,
        batch_size: int,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        estimator: Optional[Union[ShardEstimator, List[ShardEstimator]]] = None,
        use_exact_enumerate_order: Optional[bool] = False,
    ) -> None:
        if batch_size is None or batch_size < 1:
            raise ValueError(f"EmbeddingEnumerator: batch_size must be a positive int, got {batch_size!r}")
        self._compute_device = topology.compute_device
        self._world_size = topology.world_size
        self._local_world_size = topology.local_world_size
        self._topology = topology
        self._batch_size = batch_size
        self._constraints = constraints
        self._sharder_map: Dict[str, ModuleSharder[nn.Module]] = {}
        self._sharder_data_map: SharderDataMap = {}
        self._has_ssd = any(d.storage.ssd > 0 for d in topology.devices)
        self._use_exact_enumerate_order = bool(use_exact_enumerate_order)
        if estimator is None:
            self._estimators: List[ShardEstimator] = [
                EmbeddingPerfEstimator(topology=topology, constraints=constraints),
                EmbeddingStorageEstimator(topology=topology, constraints=constraints),
            ]
        elif isinstance(estimator, list):
            self._estimators = estimator
        else:
            self._estimators = [estimator]
        self._last_stored_search_space: Optional[List[ShardingOption]] = None

    @property
    def last_stored_search_space(self) -> Optional[List[ShardingOption]]:
        return self._last_stored_search_space

    @property
    def sharder_map(self) -> Dict[str, ModuleSharder[nn.Module]]:
        """``{sharder_name(module type): sharder}`` of the last ``enumerate`` call."""
        return self._sharder_map

    def _shardable_modules(
        self, module: nn.Module
    ) -> List[Tuple[str, nn.Module, ModuleSharder[nn.Module]]]:
        found: List[Tuple[str, nn.Module, ModuleSharder[nn.Module]]] = []
        stack: List[Tuple[str, nn.Module]] = [("", module)]
        while stack:
            path, m = stack.pop()
            sharder = self._sharder_map.get(sharder_name(type(m)))
            if sharder is not None:
                found.append((path, m, sharder))
                continue
            children = list(m.named_children())
            for name, child in reversed(children):
                stack.append((f"{path}.{name}" if path else name, child))
        return found

    def _allowed(self, requested: Optional[List[str]], available: List[str]) -> List[str]:
        if requested is None:
            return list(available)
        want = set(requested)
        return [a for a in available if a in want]

    def enumerate(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> List[ShardingOption]:
        self._sharder_map = {sharder_name(s.module_type): s for s in sharders}
        self._sharder_data_map = build_sharder_data_map(self._sharder_map)
        constraints = self._constraints or {}
        options: List[ShardingOption] = []
        modules = self._shardable_modules(module)
        _check_constraints(constraints, modules)
        for path, child, sharder in modules:
            features = _table_features(child)
            weighted = _is_weighted(child)
            for name, param in sharder.shardable_parameters(child).items():
                table_options = self._table_options(path, child, sharder, name, param, constraints.get(name),
                                                    features.get(name), weighted)
                if not table_options:
                    pc = constraints.get(name)
                    raise _NoShardingOptionError(
                        f"no sharding option for table {name!r} of module {path or '<root>'!r} on "
                        f"{self._compute_device}: sharder {type(sharder).__name__} offers "
                        f"{sharder.sharding_types(self._compute_device)}, constraints ask sharding_types="
                        f"{getattr(pc, 'sharding_types', None)} compute_kernels={getattr(pc, 'compute_kernels', None)}",
                        PlannerErrorType.STRICT_CONSTRAINTS,
                    )
                options.extend(table_options)
        self.populate_estimates(options)
        self._last_stored_search_space = options
        return options

    def _table_options(
        self,
        path: str,
        child: nn.Module,
        sharder: ModuleSharder[nn.Module],
        name: str,
        param: nn.Parameter,
        pc: Optional[ParameterConstraints],
        feature_names: Optional[List[str]],
        weighted: bool,
    ) -> List[ShardingOption]:
        if param.dim() != 2:
            raise ValueError(f"table {name!r} of module {path or '<root>'!r}: expected a 2-D weight, got {tuple(param.shape)}")
        rows, cols = int(param.shape[0]), int(param.shape[1])
        n_features = len(feature_names) if feature_names else 1
        if pc is not None:
            input_lengths = list(pc.pooling_factors)
        else:
            input_lengths = [POOLING_FACTOR] * n_features
        out: List[ShardingOption] = []
        sharding_types = self._allowed(pc.sharding_types if pc else None, sharder.sharding_types(self._compute_device))
        if not (pc and pc.sharding_types) and "FeatureProcessedEmbeddingBagCollection" in sharder_name(type(child)):
            sharding_types = [t for t in sharding_types if t not in GUARDED_SHARDING_TYPES_FOR_FP_MODULES]
        for st in sharding_types:
            kernels = self._allowed(
                pc.compute_kernels if pc else None, sharder.compute_kernels(st, self._compute_device)
            )
            if not (pc and pc.compute_kernels):
                kernels = [k for k in kernels if k not in _GUARDED_KERNEL_VALUES]
            if not self._has_ssd:
                kernels = [k for k in kernels if k != "key_value"]
            kernels = [k for k in kernels if self._topology.kernel_bw(k) is not None]
            if not kernels:
                continue
            sizes, offsets = strategy_for(st).shard_sizes_and_offsets(
                rows, cols, self._world_size, self._local_world_size, pc.min_partition if pc else None
            )
            partition_by = get_partition_by_type(st)
            for kernel in kernels:
                out.append(
                    ShardingOption(
                        name=name,
                        tensor=param,
                        module=(path, child),
                        input_lengths=input_lengths,
                        batch_size=self._batch_size,
                        sharding_type=st,
                        partition_by=partition_by,
                        compute_kernel=kernel,
                        shards=[Shard(size=list(s), offset=list(o)) for s, o in zip(sizes, offsets)],
                        cache_params=pc.cache_params if pc else None,
                        enforce_hbm=pc.enforce_hbm if pc else None,
                        stochastic_rounding=pc.stochastic_rounding if pc else None,
                        bounds_check_mode=pc.bounds_check_mode if pc else None,
                        feature_names=(pc.feature_names if pc and pc.feature_names else feature_names),
                        output_dtype=pc.output_dtype if pc else None,
                        key_value_params=pc.key_value_params if pc else None,
                        num_poolings=list(pc.num_poolings) if pc and pc.num_poolings else None,
                    )
                )
                out[-1].is_weighted = bool(weighted or (pc.is_weighted if pc else False))
        return out

    def populate_estimates(self, sharding_options: List[ShardingOption]) -> None:
        for estimator in self._estimators:
            estimator.estimate(sharding_options, self._sharder_data_map)
