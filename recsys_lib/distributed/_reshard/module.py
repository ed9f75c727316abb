"""Rebuilding a sharded ``EmbeddingBagCollection`` under a changed plan, state carried over.

``reshard_sharded_module(module, changed, env, device)``:

1. the new plan = the module's plan with the ``changed`` entries;
2. a new sharded module is built on a ``meta`` copy of the tables (kernels allocated on ``device``) with the
   fused parameters the tables have now (the live learning rate included);
3. every table's weight and fused optimizer states move from the old layout to the new one: point-to-point
   sends for pieces that change rank, local copies for the rest (``moves.py``); optimizer states are taken in
   their plan-independent form (``_checkpoint/rowwise_state.py``), so row-wise states of column-split tables
   survive a change of column split;
4. the module takes over the new one's parts in place (``module.__dict__``), so references to the module stay
   valid; its fused optimizer must be fetched again (``DistributedModelParallel.reshard`` does).

The next step then equals the step of a job that had run under the new plan all along.
"""

from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed._reshard.moves import prepare_comm_ops, transfer_data, update_state_dictionaries
from recsys_lib.distributed._sharded.common import kernels_of


_FROM_PLAN = ("cache_algorithm", "cache_load_factor", "cache_reserved_memory", "cache_precision", "prefetch_pipeline",
              "stochastic_rounding", "bounds_check_mode", "output_dtype")


def _fused_params_now(module: nn.Module, env: ShardingEnv) -> Optional[Dict[str, Any]]:
    """The fused parameters every table was built with (the learning rate as it is now); ``ValueError`` when tables
    differ (one sharder-level dict rebuilds them)."""
    mine: Dict[str, Any] = {}
    for kernel in kernels_of(module._lookups):
        lr = float(kernel.emb_module.get_learning_rate()) if getattr(kernel, "_optim", None) is not None else None
        for table in kernel.config.embedding_tables:
            # Plan-entry options are merged again from the new plan: leave them out.
            fused = {k: v for k, v in (table.fused_params or {}).items() if k not in _FROM_PLAN}
            if lr is not None:
                fused["learning_rate"] = lr
            mine[table.name] = fused
    everyone: List[Any] = [mine]
    if env.process_group is not None:
        everyone = [None] * dist.get_world_size(env.process_group)
        dist.all_gather_object(everyone, mine, group=env.process_group)
    merged: Dict[str, Any] = {}
    for per_rank in everyone:
        merged.update(per_rank)
    distinct = {repr(sorted(v.items(), key=lambda kv: kv[0])) for v in merged.values()}
    if len(distinct) > 1:
        raise ValueError(f"reshard: tables were built with different fused parameters ({sorted(distinct)}); "
                         f"resharding rebuilds them from one set")
    return next(iter(merged.values())) if merged else None


def _meta_copy(module: nn.Module) -> nn.Module:
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection

    return EmbeddingBagCollection(
        tables=list(module._embedding_bag_configs), is_weighted=module._is_weighted, device=torch.device("meta")
    )


def reshard_sharded_module(
    module: nn.Module,
    changed_shard_to_params: Dict[str, ParameterSharding],
    env: ShardingEnv,
    device: Optional[torch.device],
) -> None:
    """Moves ``module`` (a ``ShardedEmbeddingBagCollection``) to its plan updated with ``changed_shard_to_params``
    (collective; see the module docstring)."""
    unknown = [t for t in changed_shard_to_params if t not in module._table_name_to_parameter_sharding]
    if unknown:
        raise ValueError(f"reshard: tables {unknown} are not in the module (tables: "
                         f"{sorted(module._table_name_to_parameter_sharding)})")
    new_plan = dict(module._table_name_to_parameter_sharding)
    new_plan.update(changed_shard_to_params)
    device = torch.device(device) if device is not None else module._device
    fused = _fused_params_now(module, env)
    old_state = module.state_dict()
    old_opt = module.fused_optimizer.state_dict()  # plan-independent forms (collective for column splits)
    from recsys_lib.distributed.embeddingbag import ShardedEmbeddingBagCollection

    # The EBC body under the new plan (subclasses such as the fused EBC's add no state of their own; the fused
    # parameters gathered above carry their optimizer).
    new = ShardedEmbeddingBagCollection(_meta_copy(module), new_plan, env, fused, device,
                                        module._qcomm_codecs_registry, module._module_fqn)
    new_state = new.state_dict()
    new_optimizer = new.fused_optimizer
    new_opt = new_optimizer.state_dict()
    every_table = {t: new_plan[t] for t in module._table_names}
    for table in module._table_names:
        ops = prepare_comm_ops(new_plan, old_state, new_state, changed_shard_to_params, table, env,
                               module.extend_shard_name, old_opt, new_opt, has_optimizer=True)
        update_state_dictionaries(transfer_data(ops), old_opt, new_opt, old_state, new_state,
                                  {table: every_table[table]}, module.extend_shard_name, update_local=True)
    new_optimizer.load_state_dict(new_opt)  # pushes the moved plan-independent states into the kernels
    module.__dict__ = new.__dict__
