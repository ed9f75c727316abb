"""Sharding planner: ``EmbeddingShardingPlanner(topology=Topology(...)).plan(model, sharders)``.

Files: ``types`` (Topology, ParameterConstraints, ShardingOption, ABCs), ``enumerators``,
``shard_estimators`` (cost terms come from each strategy's ``sharding/<x>_sharding/cost.py``),
``partitioners``, ``proposers``, ``storage_reservations``, ``perf_models``, ``stats``, ``planners``,
``calibration`` (measured CPU constants), ``report`` (``plan_report``), ``constants``, ``utils``;
``estimator/`` (TorchRec's configurable perf estimator: hardware configs, coefficients, evaluators).
Private siblings: ``_hardware`` (Topology, Storage, Perf), ``_topology_config`` (TopologyFactory and its
configs), ``_sharder_data``, ``_plan_context`` (PlanLoader, context hashes), ``_plan_checks``
(validators, ``extract_plan``), ``_offload_stats``, ``_offload_scaleup``.
"""

from recsys_lib.distributed.planner.planners import EmbeddingPlannerBase, EmbeddingShardingPlanner  # noqa: F401
from recsys_lib.distributed.planner._hardware import Topology  # noqa: F401
from recsys_lib.distributed.planner.types import ParameterConstraints  # noqa: F401
from recsys_lib.distributed.planner.utils import bytes_to_gb, sharder_name  # noqa: F401

__all__ = [
    "EmbeddingPlannerBase",
    "EmbeddingShardingPlanner",
    "ParameterConstraints",
    "Topology",
    "bytes_to_gb",
    "sharder_name",
]
