"""Checks of a finished plan, and merging a stored plan into the search space.

Re-exported by ``planner.planners`` (TorchRec's path); each check raises ``PlannerError`` with its own
``PlannerErrorType``:

=============================================  ============================  ==============================
check                                          error type                    fails when
=============================================  ============================  ==============================
validate_modules_inclusion_in_sharding_plan    MISSING_MODULE_IN_PLAN        a module with shardable tables
                                                                             is not in the plan
validate_rank_assignment                       INVALID_RANK_ASSIGNMENT       a shard's rank is < 0 or >= W
validate_compute_kernels                       INVALID_COMPUTE_KERNEL        unknown kernel, dense kernel off
                                                                             data-parallel, cache load factor
                                                                             outside (0, 1), negative storage
extract_plan                                   PLAN_LOADING_FAILED           duplicate or unmatched options
=============================================  ============================  ==============================
"""

import logging
from collections import deque
from typing import Deque, Dict, List, Optional, Set, Tuple

from torch import nn

from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel
from recsys_lib.distributed.planner.types import ParameterConstraints, PlannerError, PlannerErrorType, ShardingOption
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import sharder_name
from recsys_lib.distributed._core.sharder import ModuleSharder
from recsys_lib.distributed._core.plan import ShardingPlan
from recsys_lib.distributed.sharding.strategy import strategy_for

logger = logging.getLogger(__name__)

_KERNELS = frozenset(k.value for k in EmbeddingComputeKernel)
_CACHING = ("fused_uvm_caching", "quant_uvm_caching")


def validate_modules_inclusion_in_sharding_plan(
    sharding_plan: ShardingPlan,
    module: nn.Module,
    sharders: List[ModuleSharder[nn.Module]],
    constraints: Optional[Dict[str, ParameterConstraints]] = None,
    device_group: Optional[str] = None,
) -> None:
    """Every module a sharder handles and that has shardable tables must be in ``sharding_plan``.
    With ``device_group``, only modules whose tables' constraints name that group are expected."""
    if device_group is not None and constraints is None:
        raise ValueError("validate_modules_inclusion_in_sharding_plan: device_group needs constraints")
    by_key = {sharder_name(s.module_type): s for s in sharders}
    expected: Set[str] = set()
    queue: Deque[Tuple[str, nn.Module]] = deque([("", module)])
    while queue:
        path, m = queue.popleft()
        sharder = by_key.get(sharder_name(type(m)))
        params = sharder.shardable_parameters(m) if sharder is not None else {}
        if params:
            if device_group is None or any(
                constraints is not None and name in constraints and constraints[name].device_group == device_group
                for name in params
            ):
                expected.add(path)
            continue
        for name, child in m.named_children():
            queue.append((f"{path}.{name}" if path else name, child))
    missing = sorted(expected - set(sharding_plan.plan.keys()))
    if missing:
        group = f" for device group {device_group!r}" if device_group else ""
        raise PlannerError(
            f"shardable modules missing from the sharding plan{group}: {missing}", PlannerErrorType.MISSING_MODULE_IN_PLAN
        )


def validate_rank_assignment(sharding_plan: ShardingPlan, topology: Topology) -> None:
    """Every shard of every parameter sharding has a rank in ``[0, world_size)``."""
    for module_path, module_plan in sharding_plan.plan.items():
        for param, ps in module_plan.items():
            spec = ps.sharding_spec
            if spec is None:
                logger.debug("no sharding spec for %s.%s (replicated)", module_path, param)
                continue
            for shard in spec.shards:
                rank = shard.placement.rank() if shard.placement is not None else None
                if rank is None or rank < 0 or rank >= topology.world_size:
                    raise PlannerError(
                        f"shard {list(shard.shard_offsets)} of {module_path}.{param} has rank {rank}; "
                        f"expected 0 <= rank < world_size {topology.world_size}",
                        PlannerErrorType.INVALID_RANK_ASSIGNMENT,
                    )


def validate_compute_kernels(best_plan: List[ShardingOption]) -> None:
    """Each option's kernel is known and consistent with its sharding type, cache and storage."""
    problems: List[str] = []
    for so in best_plan:
        kernel = so.compute_kernel
        if kernel not in _KERNELS:
            problems.append(f"{so.fqn}: unknown compute kernel {kernel!r}")
            continue
        if kernel == "dense" and not strategy_for(so.sharding_type).replicated:
            problems.append(f"{so.fqn}: the dense kernel needs data_parallel sharding, got {so.sharding_type!r}")
        clf = so.cache_load_factor
        if kernel in _CACHING and clf is not None and not 0 < clf < 1:
            problems.append(f"{so.fqn}: {kernel} needs 0 < cache_load_factor < 1, got {clf}")
        storage = so.total_storage
        if storage.hbm < 0 or storage.ddr < 0:
            problems.append(f"{so.fqn}: negative storage estimate {storage}")
    if problems:
        raise PlannerError(
            f"compute kernel validation failed ({len(problems)}):\n" + "\n".join(f"  - {p}" for p in problems),
            PlannerErrorType.INVALID_COMPUTE_KERNEL,
        )


def extract_plan(
    search_space: List[ShardingOption], loaded_sharding_options: Dict[int, ShardingOption]
) -> List[ShardingOption]:
    """The options of ``search_space`` that a stored plan chose (matched by ``storage_hash``), each with
    the stored shards (sizes, offsets, ranks). Every stored option must match exactly one option."""
    seen: Set[int] = set()
    out: List[ShardingOption] = []
    for so in search_space:
        key = so.storage_hash()
        if key in seen:
            raise PlannerError(
                f"two options of the search space share storage hash {key} ({so.fqn}, {so.sharding_type}, "
                f"{so.compute_kernel}); cannot match a stored plan",
                PlannerErrorType.PLAN_LOADING_FAILED,
            )
        seen.add(key)
        stored = loaded_sharding_options.get(key)
        if stored is not None:
            merged = ShardingOption(
                name=so.name, tensor=so.tensor, module=so.module, input_lengths=so.input_lengths,
                batch_size=so.batch_size, sharding_type=so.sharding_type, partition_by=so.partition_by,
                compute_kernel=so.compute_kernel, shards=stored.shards, cache_params=so.cache_params,
                enforce_hbm=so.enforce_hbm, stochastic_rounding=so.stochastic_rounding,
                bounds_check_mode=so.bounds_check_mode, dependency=so.dependency, is_pooled=so.is_pooled,
                feature_names=so.feature_names, output_dtype=so.output_dtype, key_value_params=so.key_value_params,
                num_poolings=so.num_poolings,
            )
            merged.is_weighted = so.is_weighted
            out.append(merged)
    if len(out) != len(loaded_sharding_options):
        raise PlannerError(
            f"the stored plan has {len(loaded_sharding_options)} options but only {len(out)} match the search space",
            PlannerErrorType.PLAN_LOADING_FAILED,
        )
    return out
