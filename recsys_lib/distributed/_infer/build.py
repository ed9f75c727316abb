"""From a quantized collection and its plan entries to sharding infos grouped by sharding type (pure)."""

import dataclasses
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.fused_params import FUSED_PARAM_IS_SSD_TABLE
from recsys_lib.distributed.sharding.strategy import as_sharding_type, strategy_for
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, EmbeddingTableConfig, PoolingType
from recsys_lib.quant._tables import table_rows


def logical_parameter_sharding(config: BaseEmbeddingConfig, ps: ParameterSharding,
                               plan_cols: Optional[int]) -> ParameterSharding:
    """The plan entry in logical ``(R, D)`` columns.

    Planners and plan helpers size a quantized table by its state-dict ``weight``, ``(R, plan_cols)`` bytes; a
    spec tiling ``plan_cols`` columns (``!= D``) is rescaled by ``D / plan_cols`` (``ValueError`` if a shard
    boundary falls inside an element). A spec already in ``D`` columns is kept.
    """
    spec = ps.sharding_spec
    if not isinstance(spec, EnumerableShardingSpec) or not spec.shards or plan_cols is None:
        return ps
    dim = config.embedding_dim
    width = max(int(md.shard_offsets[1]) + int(md.shard_sizes[1]) for md in spec.shards)
    if width == dim or width != plan_cols:
        return ps
    shards: List[ShardMetadata] = []
    for md in spec.shards:
        c0, nc = int(md.shard_offsets[1]), int(md.shard_sizes[1])
        if (c0 * dim) % width or (nc * dim) % width:
            raise ValueError(
                f"table {config.name!r}: shard columns [{c0}, {c0 + nc}) of the {width}-byte quantized weight do not "
                f"map to whole columns of embedding_dim {dim}"
            )
        shards.append(ShardMetadata(shard_offsets=[int(md.shard_offsets[0]), c0 * dim // width],
                                    shard_sizes=[int(md.shard_sizes[0]), nc * dim // width],
                                    placement=md.placement))
    return dataclasses.replace(ps, sharding_spec=EnumerableShardingSpec(shards))


def infos_by_sharding_type(
    owner: str,
    configs: List[BaseEmbeddingConfig],
    stored_rows: Dict[str, torch.Tensor],
    embedding_names: Dict[str, List[str]],
    table_name_to_parameter_sharding: Dict[str, ParameterSharding],
    is_weighted: bool,
    plan_cols: Dict[str, int],
) -> Dict[str, List[EmbeddingShardingInfo]]:
    """``{sharding type: [info per table]}`` in order of first appearance; every table must be planned.

    Each info's config has ``num_embeddings`` = the stored (post-pruning) rows, and its ``param`` is the
    table's stored rows ``(R, row_bytes)`` uint8. ``plan_cols``: each table's state-dict ``weight`` width (see
    :func:`logical_parameter_sharding`).
    """
    missing = [c.name for c in configs if c.name not in table_name_to_parameter_sharding]
    if missing:
        raise ValueError(f"{owner}: the plan has no entry for tables {missing}; planned: "
                         f"{sorted(table_name_to_parameter_sharding)}")
    out: Dict[str, List[EmbeddingShardingInfo]] = {}
    for c in configs:
        ps = logical_parameter_sharding(c, table_name_to_parameter_sharding[c.name], plan_cols.get(c.name))
        st = as_sharding_type(ps.sharding_type).value
        cfg = EmbeddingTableConfig(
            num_embeddings=table_rows(c), embedding_dim=c.embedding_dim, name=c.name, data_type=c.data_type,
            feature_names=list(c.feature_names), pooling=getattr(c, "pooling", PoolingType.NONE),
            is_weighted=is_weighted, embedding_names=list(embedding_names[c.name]),
        )
        out.setdefault(st, []).append(EmbeddingShardingInfo(cfg, ps, stored_rows[c.name]))
    return out


def state_dict_weight_cols(module: torch.nn.Module) -> Dict[str, int]:
    """``{table: columns of its state-dict weight}`` (what sharders offer the planner)."""
    return {name.split(".")[-2]: int(t.shape[1]) for name, t in module.state_dict().items()
            if name.endswith(".weight") and "." in name and t.dim() == 2}


def get_device_from_parameter_sharding(ps: ParameterSharding) -> Union[str, Tuple[str, ...]]:
    """The device type of a table's shards (from its spec's placements), or one per shard when they differ
    (allowed for row-splitting types only)."""
    if not isinstance(ps.sharding_spec, EnumerableShardingSpec):
        raise ValueError("Expected EnumerableShardingSpec as input to the function, got "
                         f"{type(ps.sharding_spec).__name__} for a {ps.sharding_type} plan entry")
    types = tuple(md.placement.device().type for md in ps.sharding_spec.shards)  # type: ignore[union-attr]
    if len(set(types)) == 1:
        return types[0]
    if not strategy_for(ps.sharding_type).splits_rows:
        raise ValueError(f"only row-wise sharding places one table's shards on several device types; got "
                         f"{ps.sharding_type} over {types}")
    return types


def get_device_from_sharding_infos(emb_shard_infos: List[EmbeddingShardingInfo]) -> Union[str, Tuple[str, ...]]:
    """The one device type (``"ssd"`` for SSD tables) all the tables' shards live on (``ValueError`` if several)."""
    found = set()
    for info in emb_shard_infos:
        if info.fused_params and info.fused_params.get(FUSED_PARAM_IS_SSD_TABLE, False):
            found.add("ssd")
        else:
            found.add(get_device_from_parameter_sharding(info.param_sharding))
    if len(found) != 1:
        raise ValueError(f"All shards should be on the same type of device, got {sorted(map(str, found))}")
    return found.pop()


def get_device_for_first_shard_from_sharding_infos(emb_shard_infos: List[EmbeddingShardingInfo]) -> str:
    """``get_device_from_sharding_infos``, the first shard's type when there is one per shard."""
    device_type = get_device_from_sharding_infos(emb_shard_infos)
    return device_type[0] if isinstance(device_type, tuple) else device_type
