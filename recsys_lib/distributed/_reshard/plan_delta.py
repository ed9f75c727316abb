"""The part of a new plan that differs from the old one (pure): what ``DMP.reshard`` takes.

``output_sharding_plan_delta_single(old, new)`` keeps the tables whose ranks changed::

    old {t0: TW on [0], t1: TW on [1]}   new {t0: TW on [1], t1: TW on [1]}   ->   (volume, {t0: TW on [1]})

``volume`` (with ``return_data_volume``) is the moved shards' size in MiB, counting 4 bytes per element.
"""

import copy
from typing import Dict, Tuple

from recsys_lib.distributed._core.plan import EmbeddingModuleShardingPlan


def output_sharding_plan_delta_single(
    old_plan: EmbeddingModuleShardingPlan,
    new_plan: EmbeddingModuleShardingPlan,
    return_data_volume: bool = False,
) -> Tuple[float, EmbeddingModuleShardingPlan]:
    """``(MiB moved, {table: new ParameterSharding})`` for the tables whose ranks differ (same tables in both)."""
    if set(old_plan) != set(new_plan):
        raise ValueError(f"output_sharding_plan_delta_single: the plans shard different tables: "
                         f"{sorted(old_plan)} vs {sorted(new_plan)}")
    diff = EmbeddingModuleShardingPlan({k: copy.deepcopy(v) for k, v in new_plan.items() if v.ranks != old_plan[k].ranks})
    volume = 0.0
    if return_data_volume:
        for ps in diff.values():
            spec = ps.sharding_spec
            for md in (spec.shards if spec is not None else []):
                volume += md.shard_sizes[0] * md.shard_sizes[1] * 4 / (1024 * 1024)
    return volume, diff


def output_sharding_plans_delta(
    old_plan: Dict[str, EmbeddingModuleShardingPlan],
    new_plan: Dict[str, EmbeddingModuleShardingPlan],
    return_data_volume: bool = False,
) -> Dict[str, Tuple[float, EmbeddingModuleShardingPlan]]:
    """:func:`output_sharding_plan_delta_single` for every module of ``old_plan`` (``{module fqn: plan}``)."""
    missing = [k for k in old_plan if k not in new_plan]
    if missing:
        raise ValueError(f"output_sharding_plans_delta: modules {missing} are not in the new plan")
    return {k: output_sharding_plan_delta_single(p, new_plan[k], return_data_volume) for k, p in old_plan.items()}
