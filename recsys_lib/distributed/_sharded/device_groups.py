"""Sharding infos grouped by (sharding type, device group), and shard placements moved to ``meta``.

A table's *device group* is its shards' device type, or the tuple of them when a row-wise table spans device types
(e.g. ``("cuda", "cpu")`` for a table split over HBM and host memory)::

    t0 table-wise on cuda:0            → (TABLE_WISE value, "cuda")
    t1 row-wise on cuda:0 and cpu      → (ROW_WISE value, ("cuda", "cpu"))
"""

from typing import Dict, List, Tuple, Union

import torch
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.strategy import PartitionBy, strategy_for


def get_device_from_parameter_sharding(ps: ParameterSharding) -> Union[str, Tuple[str, ...]]:
    """The device type of a table's shards; a tuple (one per shard) when they differ (row-wise only).

    Raises:
        ValueError: the spec is not an ``EnumerableShardingSpec``, or a non-row-wise table spans device types.
    """
    if not isinstance(ps.sharding_spec, EnumerableShardingSpec):
        raise ValueError("Expected EnumerableShardingSpec as input to the function")
    types = tuple(torch.device(shard.placement.device()).type for shard in ps.sharding_spec.shards)
    if len(set(types)) == 1:
        return types[0]
    strategy = strategy_for(ps.sharding_type)
    # Only a strategy with one distinct row block per rank (row-wise) may put its blocks on different devices.
    if strategy.partition_by != PartitionBy.UNIFORM or strategy.replicated:
        raise ValueError(
            f"only row_wise sharding may place a table across device types; got {ps.sharding_type} on {types}"
        )
    return types


def replace_placement_with_meta_device(sharding_infos: List[EmbeddingShardingInfo]) -> None:
    """Points every shard placement of ``sharding_infos`` at the ``meta`` device (same rank), in place: for models
    built on ``meta`` and planned for a real device."""
    for info in sharding_infos:
        spec = info.param_sharding.sharding_spec
        if spec is None:
            continue
        if not isinstance(spec, EnumerableShardingSpec):
            raise RuntimeError(f"Unsupported ShardingSpec {type(spec)} with meta device")
        for shard in spec.shards:
            placement = shard.placement
            if isinstance(placement, str):
                placement = torch.distributed._remote_device(placement)
            placement._device = torch.device("meta")
            shard.placement = placement


def group_by_sharding_device(
    infos_by_type: Dict[str, List[EmbeddingShardingInfo]], table_order: List[str]
) -> Dict[Tuple[str, Union[str, Tuple[str, ...]]], List[EmbeddingShardingInfo]]:
    """Regroups ``{sharding_type: infos}`` by ``(sharding_type, device group)``, keys in order of first appearance
    over ``table_order``."""
    by_table = {info.embedding_config.name: info for infos in infos_by_type.values() for info in infos}
    out: Dict[Tuple[str, Union[str, Tuple[str, ...]]], List[EmbeddingShardingInfo]] = {}
    for name in table_order:
        info = by_table[name]
        key = (info.param_sharding.sharding_type, get_device_from_parameter_sharding(info.param_sharding))
        out.setdefault(key, []).append(info)
    return out
