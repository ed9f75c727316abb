"""``EmbeddingShardingPlanner``: finds a sharding plan for a model.

``plan(module, sharders)``::

    topology  = storage_reservation.reserve(...)       # memory left for tables on every rank
    options   = enumerator.enumerate(module, sharders) # every (table, sharding type, kernel), estimated
    for proposer in proposers:                         # default: grid (if <= 64), greedy (depth), greedy (sum), uniform
        for proposal in proposer:                      # one option per table
            partitioner.partition(proposal, topology)  # ranks for every shard, or PlannerError
            rating = perf_model.rate(proposal)         # default: busiest rank's perf (ms)
            proposer.feedback(...)
    local search from the best proposal                # change one table at a time while it helps
    best → to_sharding_plan(best, topology)            # ShardingPlan of ParameterShardings

A proposal already rated (proposers overlap) is not partitioned again. ``collective_plan`` plans on
rank 0 of the group and broadcasts the plan (or the error) so every rank gets the same one.
"""

import gc
import logging
import time
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan, ParameterSharding, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardingPlanner
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner._search import PlanSearch, SearchTimeout
from recsys_lib.distributed.sharding.strategy import strategy_for
from recsys_lib.distributed.planner.constants import BATCH_SIZE
from recsys_lib.distributed.planner._plan_checks import (  # noqa: F401
    extract_plan,
    validate_compute_kernels,
    validate_modules_inclusion_in_sharding_plan,
    validate_rank_assignment,
)
from recsys_lib.distributed.logging_handlers import (  # noqa: F401  (TorchRec's planner hooks)
    detect_technique,
    log_kvzch_summary,
    log_mpzch_summary,
    log_offloading_summary,
    log_planner_config,
    log_planning_result,
    log_proposer_result,
    log_search_space_summary,
    log_ssd_offloading_config,
    log_storage_reservation,
    log_table_assignment,
    log_table_constraints,
)
from recsys_lib.distributed.planner._search import PlanSearch, SearchTimeout
from recsys_lib.distributed.planner.constants import BATCH_SIZE, MAX_SIZE  # noqa: F401
from recsys_lib.distributed.planner.enumerators import EmbeddingEnumerator
from recsys_lib.distributed.planner.partitioners import GreedyPerfPartitioner
from recsys_lib.distributed.planner.perf_models import NoopPerfModel
from recsys_lib.distributed.planner.proposers import GreedyProposer, GridSearchProposer, UniformProposer
from recsys_lib.distributed.planner.stats import EmbeddingStats
from recsys_lib.distributed.planner.storage_reservations import HeuristicalStorageReservation
from recsys_lib.distributed.planner.types import (
    Enumerator,
    ParameterConstraints,
    Partitioner,
    PerfModel,
    PlannerError,
    PlannerErrorType,
    Proposer,
    ShardingOption,
    Stats,
    StorageReservation,
    hash_planner_context_inputs,
    hash_planner_context_inputs_str,
)
from recsys_lib.distributed.planner._plan_context import PlanDebugStats, PlanLoader
from recsys_lib.distributed.planner._hardware import Topology
from recsys_lib.distributed.planner.utils import bytes_to_gb, reset_shard_rank
from recsys_lib.distributed.sharding_plan import placement
from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan, ParameterSharding, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardingPlanner
from recsys_lib.distributed.planner.storage_reservations import FixedAbsoluteStorageReservation  # noqa: F401,E402
from recsys_lib.distributed.planner._hardware import Storage  # noqa: F401
from recsys_lib.distributed.planner.utils import sharder_name, storage_repr_in_gb  # noqa: F401,E402

logger = logging.getLogger(__name__)

_DEFAULT_GRID_PROPOSALS = 64


def to_sharding_plan(sharding_options: List[ShardingOption], topology: Topology) -> ShardingPlan:
    """The ``ShardingPlan`` of placed options (every shard needs a rank)."""
    plan: Dict[str, EmbeddingModuleShardingPlan] = {}
    for o in sharding_options:
        ranks = [s.rank for s in o.shards]
        if any(r is None for r in ranks):
            raise PlannerError(f"to_sharding_plan: table {o.fqn!r} has unplaced shards", PlannerErrorType.OTHER)
        spec: Optional[EnumerableShardingSpec] = None
        if not strategy_for(o.sharding_type).replicated:
            spec = EnumerableShardingSpec([
                ShardMetadata(
                    shard_offsets=list(s.offset),
                    shard_sizes=list(s.size),
                    placement=placement(topology.compute_device, int(s.rank), topology.local_world_size),
                )
                for s in o.shards
            ])
        module_plan = plan.setdefault(o.path, EmbeddingModuleShardingPlan())
        module_plan[o.name] = ParameterSharding(
            sharding_type=o.sharding_type,
            compute_kernel=o.compute_kernel,
            ranks=[int(r) for r in ranks],
            sharding_spec=spec,
            cache_params=o.cache_params,
            enforce_hbm=o.enforce_hbm,
            stochastic_rounding=o.stochastic_rounding,
            bounds_check_mode=o.bounds_check_mode,
            output_dtype=o.output_dtype,
            key_value_params=o.key_value_params,
        )
    return ShardingPlan(plan=dict(plan))


def _default_topology() -> Topology:
    from recsys_lib.distributed.comm import get_local_size

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        return Topology(local_world_size=get_local_size(world), world_size=world, compute_device=device)
    logger.warning("EmbeddingShardingPlanner: torch.distributed is not initialised; planning for world_size=1")
    return Topology(world_size=1, compute_device=device)


def _default_sharders() -> List[ModuleSharder[nn.Module]]:
    try:
        from recsys_lib.distributed.sharding_plan import get_default_sharders
    except ImportError as e:
        raise ValueError(f"collective_plan: pass sharders explicitly (default sharders unavailable: {e})") from e
    return get_default_sharders()


class EmbeddingPlannerBase(ShardingPlanner):
    """Shared constructor defaults and ``collective_plan``."""

    def __init__(
        self,
        topology: Optional[Topology] = None,
        batch_size: Optional[int] = None,
        enumerator: Optional[Enumerator] = None,
        storage_reservation: Optional[StorageReservation] = None,
        stats: Optional[Union[Stats, List[Stats]]] = None,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        debug: bool = True,
        callbacks: Optional[List[Callable[[List[ShardingOption]], List[ShardingOption]]]] = None,
        timeout_seconds: Optional[int] = None,
        heuristical_storage_reservation_percentage: float = 0.15,
    ) -> None:
        self._topology: Topology = topology if topology is not None else _default_topology()
        self._batch_size: int = batch_size if batch_size is not None else BATCH_SIZE
        self._constraints = constraints
        self._enumerator: Enumerator = enumerator if enumerator is not None else EmbeddingEnumerator(
            topology=self._topology, batch_size=self._batch_size, constraints=constraints
        )
        self._storage_reservation: StorageReservation = (
            storage_reservation
            if storage_reservation is not None
            else HeuristicalStorageReservation(percentage=heuristical_storage_reservation_percentage)
        )
        if stats is None:
            self._stats: List[Stats] = [EmbeddingStats()]
        elif isinstance(stats, list):
            self._stats = stats
        else:
            self._stats = [stats]
        self._debug = debug
        self._callbacks = callbacks or []
        if timeout_seconds is not None and timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds}")
        self._timeout_seconds = timeout_seconds

    def hash_planner_context_inputs(self) -> int:
        """Fingerprint of topology, batch size, search space, storage reservation and constraints (valid
        after a ``plan`` call); a stored plan is reusable while it is unchanged."""
        return hash_planner_context_inputs(
            self._topology, self._batch_size, self._enumerator, self._storage_reservation, self._constraints
        )

    def hash_planner_context_inputs_str(self) -> str:
        """:meth:`hash_planner_context_inputs` as a hex string."""
        return hash_planner_context_inputs_str(
            self._topology, self._batch_size, self._enumerator, self._storage_reservation, self._constraints
        )

    def collective_plan(
        self,
        module: nn.Module,
        sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
        pg: Optional[dist.ProcessGroup] = None,
    ) -> ShardingPlan:
        """Plans on rank 0 of ``pg`` (default: the world group) and broadcasts the plan; every rank
        returns the same plan, or raises the same ``PlannerError``. Without an initialised process
        group this is ``plan()``."""
        if sharders is None:
            sharders = _default_sharders()
        if pg is None and dist.is_available() and dist.is_initialized():
            pg = dist.GroupMember.WORLD
        if pg is None or dist.get_world_size(pg) == 1:
            return self.plan(module, sharders)
        payload: List[Any] = [None]
        if dist.get_rank(pg) == 0:
            try:
                payload[0] = ("plan", self.plan(module, sharders))
            except PlannerError as e:
                payload[0] = ("error", (str(e), e.error_type))
        src = dist.get_global_rank(pg, 0)
        dist.broadcast_object_list(payload, src=src, group=pg)
        kind, value = payload[0]
        if kind == "error":
            raise PlannerError(value[0], value[1])
        return value


class EmbeddingShardingPlanner(EmbeddingPlannerBase):
    """Plans the sharding of every module a sharder handles (see the module docstring).

    Args:
        topology: target machines (default: the initialised world, ``cuda`` if available).
        batch_size: per-rank batch size (default 512).
        enumerator / storage_reservation / proposer / partitioner / performance_model / stats:
            the pipeline stages (defaults as in the module docstring).
        constraints: ``{table name: ParameterConstraints}``.
        debug: log the statistics report.
        callbacks: functions applied to the best plan's options before it becomes a ``ShardingPlan``.
        timeout_seconds: stop proposing after this long (keeping the best plan so far).
        plan_loader: supplies a stored plan; when it loads one (and its context hash matches), the
            search is skipped and the stored shards are used.

    Attributes:
        local_search: (recsys_lib) after the proposers, improve the best plan table by table (see ``_search``);
            default ``True``, set ``planner.local_search = False`` (or the class attribute) to skip it.

    Example::

        planner = EmbeddingShardingPlanner(topology=Topology(world_size=2, compute_device="cpu"))
        plan = planner.plan(ebc, [sharder])          # or planner.collective_plan(ebc, [sharder], pg)
        plan.plan[""]["t0"].sharding_type            # e.g. "table_wise"
    """

    local_search: bool = True

    def __init__(
        self,
        topology: Optional[Topology] = None,
        batch_size: Optional[int] = None,
        enumerator: Optional[Enumerator] = None,
        storage_reservation: Optional[StorageReservation] = None,
        proposer: Optional[Union[Proposer, List[Proposer]]] = None,
        partitioner: Optional[Partitioner] = None,
        performance_model: Optional[PerfModel] = None,
        stats: Optional[Union[Stats, List[Stats]]] = None,
        constraints: Optional[Dict[str, ParameterConstraints]] = None,
        debug: bool = True,
        callbacks: Optional[List[Callable[[List[ShardingOption]], List[ShardingOption]]]] = None,
        timeout_seconds: Optional[int] = None,
        plan_loader: Optional[PlanLoader] = None,
    ) -> None:
        super().__init__(
            topology=topology, batch_size=batch_size, enumerator=enumerator, storage_reservation=storage_reservation,
            stats=stats, constraints=constraints, debug=debug, callbacks=callbacks, timeout_seconds=timeout_seconds,
        )
        if proposer is None:
            # The grid only runs where it is small; the local search covers what it would find elsewhere.
            self._proposers: List[Proposer] = [
                GridSearchProposer(max_proposals=_DEFAULT_GRID_PROPOSALS), GreedyProposer(),
                GreedyProposer(use_depth=False), UniformProposer(),
            ]
        elif isinstance(proposer, list):
            self._proposers = proposer
        else:
            self._proposers = [proposer]
        self._partitioner: Partitioner = partitioner if partitioner is not None else GreedyPerfPartitioner()
        self._perf_model: PerfModel = performance_model if performance_model is not None else NoopPerfModel(self._topology)
        self.plan_loader = plan_loader
        self._num_proposals = 0
        self._num_plans = 0
        self._best_plan: Optional[List[ShardingOption]] = None

    def plan(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> ShardingPlan:
        # Planning allocates hundreds of thousands of small objects that all stay alive until it ends;
        # the cyclic garbage collector would rescan them over and over (most of the time at 1000 tables).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._plan(module, sharders)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _plan(self, module: nn.Module, sharders: List[ModuleSharder[nn.Module]]) -> ShardingPlan:
        start = time.perf_counter()
        self._num_proposals = 0
        self._num_plans = 0
        self._best_plan = None
        storage_constraint = self._storage_reservation.reserve(
            topology=self._topology, batch_size=self._batch_size, module=module, sharders=sharders,
            constraints=self._constraints,
        )
        search_space = self._enumerator.enumerate(module=module, sharders=sharders)
        if not search_space:
            return ShardingPlan({})
        log_search_space_summary(search_space, type(self).__name__)
        best_plan = self._load_plan(search_space)
        if not best_plan:
            best, last_error = self._search(search_space, storage_constraint, start)
            if best is None:
                error = self._no_plan_error(search_space, storage_constraint, last_error)
                log_planning_result(type(self).__name__, error_message=str(error))
                raise error
            best_plan = [option.placed_copy(ranks) for option, ranks in best]
            # the partitioner placed the search space's own shards; leave it unplaced (as enumerated),
            # so the planner context hash is the same before and after planning
            reset_shard_rank(search_space)
        for callback in self._callbacks:
            best_plan = callback(best_plan)
        self._best_plan = best_plan
        sharding_plan = to_sharding_plan(best_plan, self._topology)
        run_time = time.perf_counter() - start
        for stats in self._stats:
            stats.log(
                sharding_plan=sharding_plan, topology=self._topology, batch_size=self._batch_size,
                storage_reservation=self._storage_reservation, num_proposals=self._num_proposals,
                num_plans=self._num_plans, run_time=run_time, best_plan=best_plan, constraints=self._constraints,
                sharders=sharders, enumerator=self._enumerator, debug=self._debug,
                debug_stats=PlanDebugStats(planner_type=type(self).__name__, timeout_seconds=self._timeout_seconds),
            )
        validate_modules_inclusion_in_sharding_plan(sharding_plan, module, sharders)
        validate_rank_assignment(sharding_plan, self._topology)
        validate_compute_kernels(best_plan)
        log_table_assignment(best_plan, type(self).__name__, detect_technique(best_plan))
        log_planning_result(type(self).__name__, detect_technique(best_plan))
        return sharding_plan

    def _load_plan(self, search_space: List[ShardingOption]) -> List[ShardingOption]:
        """The stored plan of ``plan_loader`` merged into ``search_space`` (``[]`` when none is stored)."""
        if self.plan_loader is None:
            return []
        stored_hash = self.plan_loader.plan_context_hash()
        if stored_hash is not None:
            current = self.hash_planner_context_inputs_str()
            if current != stored_hash:
                raise PlannerError(
                    f"cannot load the stored plan: it was made for planner context {stored_hash}, the current "
                    f"context is {current} (topology, batch size, tables, reservation or constraints changed)",
                    PlannerErrorType.PLANNER_INPUT_CONTEXT_MISMATCH,
                )
        loaded = self.plan_loader.load()
        if not loaded:
            return []
        logger.info("using the stored plan (%d sharding options); no search", len(loaded))
        return extract_plan(search_space, loaded)

    def _search(
        self, search_space: List[ShardingOption], storage_constraint: Topology, start: float
    ) -> Tuple[Optional[List[Tuple[ShardingOption, List[int]]]], Optional[PlannerError]]:
        search = PlanSearch(self._partitioner, self._perf_model, storage_constraint, start, self._timeout_seconds)
        try:
            for proposer in self._proposers:
                search.run_proposer(proposer, search_space, self._enumerator)
            if self.local_search:
                search.local_search(search_space)
        except SearchTimeout:
            logger.warning("planner timed out after %ss; using the best plan so far", self._timeout_seconds)
        self._num_proposals = search.num_proposals
        self._num_plans = search.num_plans
        return search.best, search.last_error

    def _no_plan_error(
        self, search_space: List[ShardingOption], storage_constraint: Topology, last_error: Optional[PlannerError]
    ) -> PlannerError:
        kind = "ddr" if storage_constraint.compute_device == "cpu" else "hbm"
        smallest: Dict[str, int] = {}
        for o in search_space:
            need = getattr(o.total_storage, kind)
            smallest[o.fqn] = min(smallest.get(o.fqn, need), need)
        needed = sum(smallest.values())
        available = sum(getattr(d.storage, kind) for d in storage_constraint.devices)
        msg = (
            f"Unable to find a plan for this model: evaluated {self._num_proposals} proposal(s), none fits. "
            f"The smallest option of every table needs {bytes_to_gb(needed):.4g} GB {kind.upper()} in total; "
            f"{bytes_to_gb(available):.4g} GB is left across {storage_constraint.world_size} rank(s) after the "
            f"storage reservation"
        )
        if needed > available:
            msg += f" (short by {bytes_to_gb(needed - available):.4g} GB)"
        if last_error is not None:
            msg += f". Last failure: {last_error}"
        return PlannerError(msg, PlannerErrorType.INSUFFICIENT_STORAGE)
