"""Recording a plan delta on a sharded module (its plan and its per-sharding-type infos)."""

from typing import Any, Dict, List

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo


def update_module_sharding_plan(
    module: Any,
    changed_sharding_params: Dict[str, ParameterSharding],
    sharding_type_to_sharding_infos: Dict[str, List[EmbeddingShardingInfo]],
) -> None:
    """Writes ``changed_sharding_params`` into ``module``'s plan and into ``sharding_type_to_sharding_infos`` (an
    info whose sharding type changes moves to its new type's list; emptied lists are dropped). Moves no data."""
    plan = module._table_name_to_parameter_sharding
    for name, ps in changed_sharding_params.items():
        if name not in plan:
            raise ValueError(f"update_module_sharding_plan: table {name!r} is not in the module's plan ({sorted(plan)})")
        plan[name] = ps
    for sharding_type in list(sharding_type_to_sharding_infos):
        infos = sharding_type_to_sharding_infos[sharding_type]
        keep: List[EmbeddingShardingInfo] = []
        for info in infos:
            ps = changed_sharding_params.get(info.embedding_config.name)
            if ps is None:
                keep.append(info)
                continue
            info.param_sharding = ps
            if ps.sharding_type == sharding_type:
                keep.append(info)
            else:
                sharding_type_to_sharding_infos.setdefault(ps.sharding_type, []).append(info)
        if keep:
            sharding_type_to_sharding_infos[sharding_type] = keep
        else:
            del sharding_type_to_sharding_infos[sharding_type]
