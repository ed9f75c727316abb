"""How a quantized collection groups its tables into kernels (pure planning, no tensors).

Tables are grouped by pooling type in order of first appearance (one FBGEMM TBE per group, as TorchRec does);
the output features follow the groups::

    tables   t0 (SUM: f0)   t1 (MEAN: f1)   t2 (SUM: f2, f3)
    groups   [t0, t2]       [t1]
    order    f0 f2 f3 | f1                  group_bounds [0, 3, 4]
"""

from dataclasses import dataclass
from typing import Dict, List

from recsys_lib.modules._feature_layout import embedding_names_by_table, table_feature_names
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, PoolingType
from recsys_lib.quant._tables import table_rows


@dataclass(frozen=True)
class QuantLayout:
    """Groups of tables and the collection's feature order.

    Attributes:
        groups: tables of each kernel group.
        poolings: pooling type of each group.
        feature_order: every (table, feature) pair's feature, group by group, tables in order.
        group_bounds: ``feature_order[group_bounds[g]:group_bounds[g+1]]`` are group ``g``'s features.
        feature_table_maps: per group, the group-local table index of each of its features.
        embedding_names: output name of each entry of ``feature_order``.
        dims: embedding dim of each entry of ``feature_order``.
        rows_per_feature / table_per_feature: stored rows and table name of each entry's table.
    """

    groups: List[List[BaseEmbeddingConfig]]
    poolings: List[PoolingType]
    feature_order: List[str]
    group_bounds: List[int]
    feature_table_maps: List[List[int]]
    embedding_names: List[str]
    dims: List[int]
    rows_per_feature: List[int]
    table_per_feature: List[str]


def plan_layout(tables: List[BaseEmbeddingConfig], pooled: bool) -> QuantLayout:
    """Group ``tables`` (by pooling when ``pooled``; one group for sequence lookups)."""
    names = embedding_names_by_table(tables)
    name_of: Dict[str, List[str]] = {t.name: n for t, n in zip(tables, names)}
    keys: List[PoolingType] = []
    by_key: Dict[PoolingType, List[BaseEmbeddingConfig]] = {}
    for t in tables:
        key = t.pooling if pooled else PoolingType.NONE  # type: ignore[attr-defined]
        if key not in by_key:
            keys.append(key)
            by_key[key] = []
        by_key[key].append(t)
    groups = [by_key[k] for k in keys]
    order: List[str] = []
    bounds: List[int] = [0]
    maps: List[List[int]] = []
    emb_names: List[str] = []
    dims: List[int] = []
    rows: List[int] = []
    owners: List[str] = []
    for g in groups:
        m: List[int] = []
        for i, t in enumerate(g):
            for f, n in zip(table_feature_names(t), name_of[t.name]):
                order.append(f)
                m.append(i)
                emb_names.append(n)
                dims.append(t.embedding_dim)
                rows.append(table_rows(t))
                owners.append(t.name)
        maps.append(m)
        bounds.append(len(order))
    return QuantLayout(
        groups=groups, poolings=keys, feature_order=order, group_bounds=bounds, feature_table_maps=maps,
        embedding_names=emb_names, dims=dims, rows_per_feature=rows, table_per_feature=owners,
    )
