"""From a quantized collection and its plan entries to sharding infos grouped by sharding type (pure)."""

from typing import Dict, List

import torch

from recsys_lib.distributed._core.plan import ParameterSharding
from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.strategy import as_sharding_type
from recsys_lib.modules.embedding_configs import BaseEmbeddingConfig, EmbeddingTableConfig, PoolingType
from recsys_lib.quant._tables import table_rows


def infos_by_sharding_type(
    owner: str,
    configs: List[BaseEmbeddingConfig],
    stored_rows: Dict[str, torch.Tensor],
    embedding_names: Dict[str, List[str]],
    table_name_to_parameter_sharding: Dict[str, ParameterSharding],
    is_weighted: bool,
) -> Dict[str, List[EmbeddingShardingInfo]]:
    """``{sharding type: [info per table]}`` in order of first appearance; every table must be planned.

    Each info's config has ``num_embeddings`` = the stored (post-pruning) rows, and its ``param`` is the
    table's stored rows ``(R, row_bytes)`` uint8.
    """
    missing = [c.name for c in configs if c.name not in table_name_to_parameter_sharding]
    if missing:
        raise ValueError(f"{owner}: the plan has no entry for tables {missing}; planned: "
                         f"{sorted(table_name_to_parameter_sharding)}")
    out: Dict[str, List[EmbeddingShardingInfo]] = {}
    for c in configs:
        ps = table_name_to_parameter_sharding[c.name]
        st = as_sharding_type(ps.sharding_type).value
        cfg = EmbeddingTableConfig(
            num_embeddings=table_rows(c), embedding_dim=c.embedding_dim, name=c.name, data_type=c.data_type,
            feature_names=list(c.feature_names), pooling=getattr(c, "pooling", PoolingType.NONE),
            is_weighted=is_weighted, embedding_names=list(embedding_names[c.name]),
        )
        out.setdefault(st, []).append(EmbeddingShardingInfo(cfg, ps, stored_rows[c.name]))
    return out
