"""Sharding applied from outside: functions that swap submodules for their sharded versions, in place.

* :func:`shard` — one module, one module plan (or per-table generators from ``sharding_plan``).
* :func:`shard_modules` — every submodule a plan names (no DDP; e.g. inference or custom wrappers).
* :func:`default_plan` — the plan used when none is given: the planner
  (``recsys_lib.distributed.planner.EmbeddingShardingPlanner``).
* :func:`round_robin_plan` — a simple explicit plan: whole tables placed round-robin table-wise::

      tables t0, t1, t2 of every shardable module, W=2  ->  t0: rank 0, t1: rank 1, t2: rank 0

Example::

    ebc = EmbeddingBagCollection(tables)
    sharded = shard(ebc, {"t0": table_wise(rank=0), "t1": column_wise(ranks=[0, 1])}, env)
    model = shard_modules(model, env, plan=plan)      # the plan's submodules replaced
"""

from typing import Any, Callable, Dict, List, Optional, Type, Union

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan, ModuleShardingPlan, ShardingPlan
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardingPlanner


def default_env() -> ShardingEnv:
    """The initialised default process group, or a one-rank local environment."""
    if dist.is_available() and dist.is_initialized():
        return ShardingEnv.from_process_group(dist.GroupMember.WORLD)
    return ShardingEnv.from_local(1, 0)


def default_device() -> torch.device:
    """``cuda:<local rank>`` when CUDA is available, else cpu."""
    if torch.cuda.is_available():
        from recsys_lib.distributed.comm import get_local_rank

        world = dist.get_world_size() if dist.is_initialized() else 1
        rank = dist.get_rank() if dist.is_initialized() else 0
        return torch.device("cuda", get_local_rank(world, rank))
    return torch.device("cpu")


def _default_sharders() -> List[ModuleSharder[nn.Module]]:
    from recsys_lib.distributed.sharding_plan import get_default_sharders

    return get_default_sharders()


def _sharder_map(sharders: List[ModuleSharder[nn.Module]]) -> Dict[Type[nn.Module], ModuleSharder[nn.Module]]:
    return {s.module_type: s for s in sharders}


def round_robin_plan(
    module: nn.Module, sharders: List[ModuleSharder[nn.Module]], env: ShardingEnv, device: torch.device
) -> ShardingPlan:
    """Whole tables, table-wise, ranks 0, 1, ..., W-1, 0, ... over every shardable submodule."""
    from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, table_wise

    by_type = _sharder_map(sharders)
    plan: Dict[str, ModuleShardingPlan] = {}
    next_rank = 0
    for fqn, sub in module.named_modules():
        sharder = by_type.get(type(sub))
        if sharder is None or any(fqn.startswith(p + ".") or p == "" for p in plan):
            continue
        gens: Dict[str, Any] = {}
        for name in sharder.shardable_parameters(sub):
            # "fused": the kernel every sharder offers for table-wise tables (dense is only for data parallel)
            gens[name] = table_wise(rank=next_rank % env.world_size, compute_kernel="fused")
            next_rank += 1
        plan[fqn] = construct_module_sharding_plan(
            sub, gens, sharder, local_size=env.local_world_size, world_size=env.world_size, device_type=device.type
        )
    return ShardingPlan(plan)


def default_plan(
    module: nn.Module,
    sharders: List[ModuleSharder[nn.Module]],
    env: ShardingEnv,
    device: torch.device,
    planner: Optional[ShardingPlanner] = None,
) -> ShardingPlan:
    """The given ``planner``'s plan, else ``EmbeddingShardingPlanner``'s for this world and device.

    With a process group the plan is made on rank 0 and broadcast (``collective_plan``).
    """
    if planner is None:
        from recsys_lib.distributed.planner._hardware import Topology
        from recsys_lib.distributed.planner.planners import EmbeddingShardingPlanner

        planner = EmbeddingShardingPlanner(
            topology=Topology(
                world_size=env.world_size, compute_device=device.type, local_world_size=env.local_world_size
            )
        )
    if env.process_group is not None:
        return planner.collective_plan(module, sharders, env.process_group)  # type: ignore[call-arg]
    return planner.plan(module, sharders)


def shard(
    module: nn.Module,
    plan: Union[ModuleShardingPlan, Dict[str, Callable[..., Any]], Callable[..., Any]],
    env: Optional[ShardingEnv] = None,
    device: Optional[torch.device] = None,
    sharder: Optional[ModuleSharder[nn.Module]] = None,
) -> nn.Module:
    """The sharded replacement of ``module``.

    Args:
        module: e.g. an ``EmbeddingBagCollection``.
        plan: a module plan (table → ``ParameterSharding``), a dict of per-table generators
            (``table_wise(rank=0)``, ...), or one generator for every table.
        env: default :func:`default_env`; device: default :func:`default_device`.
        sharder: default: the default sharder of ``type(module)``.
    """
    env = env if env is not None else default_env()
    device = torch.device(device) if device is not None else default_device()
    if sharder is None:
        by_type = _sharder_map(_default_sharders())
        if type(module) not in by_type:
            raise ValueError(f"shard: no default sharder for {type(module).__name__}; pass sharder=")
        sharder = by_type[type(module)]
    if callable(plan) and not isinstance(plan, dict):
        plan = {name: plan for name in sharder.shardable_parameters(module)}
    if isinstance(plan, dict) and not isinstance(plan, EmbeddingModuleShardingPlan) and any(
        callable(v) for v in plan.values()
    ):
        from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan

        plan = construct_module_sharding_plan(
            module, plan, sharder, local_size=env.local_world_size, world_size=env.world_size, device_type=device.type
        )
    return sharder.shard(module, plan, env, device)


def shard_modules(
    module: nn.Module,
    env: Optional[ShardingEnv] = None,
    device: Optional[torch.device] = None,
    plan: Optional[ShardingPlan] = None,
    sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
    init_params: bool = False,
) -> nn.Module:
    """Replaces every submodule named in ``plan`` (default: :func:`default_plan`) with its sharded version;
    returns ``module`` (or the sharded module when the root itself is planned)."""
    return _shard_modules(module, env, device, plan, sharders, init_params)


def _shard_modules(
    module: nn.Module,
    env: Optional[ShardingEnv] = None,
    device: Optional[torch.device] = None,
    plan: Optional[ShardingPlan] = None,
    sharders: Optional[List[ModuleSharder[nn.Module]]] = None,
    init_params: bool = False,
    planner: Optional[ShardingPlanner] = None,
) -> nn.Module:
    """:func:`shard_modules` with an optional ``planner`` (the tutorial's path)."""
    env = env if env is not None else default_env()
    device = torch.device(device) if device is not None else default_device()
    sharders = list(sharders) if sharders is not None else _default_sharders()
    if plan is None:
        plan = default_plan(module, sharders, env, device, planner)
    by_type = _sharder_map(sharders)
    modules = dict(module.named_modules())
    unknown = [fqn for fqn in plan.plan if fqn not in modules]
    if unknown:
        raise ValueError(f"shard_modules: the plan names submodules {unknown} that the model does not have")
    for fqn, module_plan in plan.plan.items():
        sub = modules[fqn]
        sharder = by_type.get(type(sub))
        if sharder is None:
            raise ValueError(
                f"shard_modules: no sharder for {fqn!r} of type {type(sub).__name__}; sharders handle "
                f"{[t.__name__ for t in by_type]}"
            )
        sharded = sharder.shard(sub, module_plan, env, device, module_fqn=fqn)
        if fqn == "":
            return sharded
        parent_name, _, child = fqn.rpartition(".")
        setattr(modules[parent_name], child, sharded)
    if init_params:
        from recsys_lib.distributed.utils import init_parameters

        init_parameters(module, device)
    return module
