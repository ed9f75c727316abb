"""``group_tables``: which table shards on a rank can share one TBE kernel (a pure function).

Tables join the same :class:`GroupedEmbeddingConfig` when they agree on data type, pooling, weighting,
feature processing, compute kernel and fused params (``fused_params["use_one_tbe_per_table"] = True``
gives the table a kernel of its own). Groups appear in the order of their first table; tables keep their
order within a group. ``use_one_tbe_per_table`` is consumed here and does not reach the kernels.

Example::

    # rank 0: t0 (SUM, fused), t1 (MEAN, fused), t2 (SUM, fused)  ->  [[group(t0, t2), group(t1)]]
    grouped = group_tables([[t0, t1, t2]])
"""

from typing import Any, Dict, Hashable, List, Optional, Tuple

from recsys_lib.distributed._sharded.table_types import GroupedEmbeddingConfig, ShardedEmbeddingTable

USE_ONE_TBE_PER_TABLE = "use_one_tbe_per_table"


def _hashable(value: Any) -> Hashable:
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple, set)):
        return tuple(_hashable(v) for v in value)
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def _group_key(table: ShardedEmbeddingTable) -> Tuple[Tuple[Hashable, ...], Optional[Dict[str, Any]]]:
    fused = None if table.fused_params is None else dict(table.fused_params)
    own_kernel = False
    if fused is not None:
        own_kernel = bool(fused.pop(USE_ONE_TBE_PER_TABLE, False))
    key = (
        table.data_type,
        table.pooling,
        table.is_weighted,
        table.has_feature_processor,
        table.compute_kernel,
        _hashable(fused) if fused is not None else None,
        table.name if own_kernel else None,
    )
    return key, fused


def _group_rank(tables: List[ShardedEmbeddingTable]) -> List[GroupedEmbeddingConfig]:
    groups: Dict[Tuple[Hashable, ...], GroupedEmbeddingConfig] = {}
    for table in tables:
        if not isinstance(table, ShardedEmbeddingTable):
            raise TypeError(f"group_tables expects ShardedEmbeddingTable entries, got {type(table).__name__}")
        key, fused = _group_key(table)
        if key not in groups:
            groups[key] = GroupedEmbeddingConfig(
                data_type=table.data_type,
                pooling=table.pooling,
                is_weighted=table.is_weighted,
                has_feature_processor=table.has_feature_processor,
                compute_kernel=table.compute_kernel,
                embedding_tables=[],
                fused_params=fused,
            )
        groups[key].embedding_tables.append(table)
    return list(groups.values())


def group_tables(tables_per_rank: List[List[ShardedEmbeddingTable]]) -> List[List[GroupedEmbeddingConfig]]:
    """Groups each rank's table shards into kernels (see the module docstring).

    Args:
        tables_per_rank: ``tables_per_rank[r]`` = the shards placed on rank ``r``.

    Returns:
        ``grouped[r]`` = rank ``r``'s grouped configs (empty list for a rank without tables).
    """
    return [_group_rank(list(tables)) for tables in tables_per_rank]
