"""Where each shard of a sharded quantized collection lives, as TorchRec's ``quant_state`` reads it (pure-ish).

A sharded quantized module runs one local quantized collection ("kernel") per active rank and sharding type; each
kernel holds some tables' shards. ``kernel_configs`` describes every kernel as a ``GroupedEmbeddingConfig`` whose
``ShardedEmbeddingTable`` entries carry the shard's place in the logical ``(R, D)`` table (``local_metadata``, as a
plan entry gives it; ``global_metadata``: all shards of the table). ``kernel_table_tensors`` returns the state-dict
views of one table inside one kernel.
"""

from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor.metadata import ShardedTensorMetadata

from recsys_lib.distributed._infer.shards import InferShard
from recsys_lib.distributed._sharded.table_types import (
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    ShardedEmbeddingTable,
)

def _metadata(s: InferShard, device: torch.device) -> ShardMetadata:
    return ShardMetadata(shard_offsets=[s.row_offset, s.col_offset], shard_sizes=[s.rows, s.cols],
                         placement=f"rank:{s.rank}/{device}")

def kernel_configs(
    shardings: List[Any],
    lookups: List[nn.ModuleList],
    device: torch.device,
    fused_params: Optional[Dict[str, Any]],
) -> Dict[nn.Module, GroupedEmbeddingConfig]:
    """``{kernel: its GroupedEmbeddingConfig}`` over every sharding type (in order) and active rank.

    Args:
        shardings: the ``Infer*Sharding`` of each sharding type.
        lookups: per sharding, the kernels ``create_lookup`` built (one per active rank).
        device: the sharded module's device (shard placements ``rank:<r>/<device>``).
        fused_params: the sharder's fused params (copied into each config).
    """
    all_shards: Dict[str, List[InferShard]] = {}
    for sharding in shardings:
        for group in sharding.local_shards():
            for info, s in group:
                all_shards.setdefault(info.embedding_config.name, []).append(s)
    out: Dict[nn.Module, GroupedEmbeddingConfig] = {}
    for sharding, kernels in zip(shardings, lookups):
        for group, kernel in zip(sharding.local_shards(), kernels):
            tables: List[ShardedEmbeddingTable] = []
            for info, s in group:
                cfg = info.embedding_config
                shards = sorted(all_shards[cfg.name], key=lambda x: (x.row_offset, x.col_offset))
                global_md = ShardedTensorMetadata(
                    shards_metadata=[_metadata(x, device) for x in shards],
                    size=torch.Size([cfg.num_embeddings, cfg.embedding_dim]),
                )
                tables.append(ShardedEmbeddingTable(
                    num_embeddings=cfg.num_embeddings, embedding_dim=cfg.embedding_dim, name=cfg.name,
                    data_type=cfg.data_type, feature_names=list(cfg.feature_names), pooling=cfg.pooling,
                    is_weighted=cfg.is_weighted, embedding_names=list(cfg.embedding_names),
                    compute_kernel=EmbeddingComputeKernel.QUANT, local_rows=s.rows, local_cols=s.cols,
                    local_metadata=_metadata(s, device), global_metadata=global_md, fused_params=fused_params,
                ))
            first = group[0][0].embedding_config
            out[kernel] = GroupedEmbeddingConfig(
                data_type=first.data_type, pooling=first.pooling, is_weighted=first.is_weighted,
                has_feature_processor=False, compute_kernel=EmbeddingComputeKernel.QUANT, embedding_tables=tables,
                fused_params=fused_params,
            )
    return out

def kernel_table_tensors(
    kernel: nn.Module, table: str
) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """``(weight, weight_qscale or None, weight_qbias or None)`` of ``table`` in a kernel: the kernel's own
    state-dict views (they alias its stored rows, so writing them updates what it reads). A kernel that is an
    FBGEMM inference TBE answers through ``split_embedding_weights_with_scale_bias``."""
    holders = getattr(kernel, "embedding_bags", None)
    if holders is None:
        holders = getattr(kernel, "embeddings", None)
    if isinstance(holders, nn.ModuleDict):
        if table not in holders:
            raise KeyError(f"kernel {type(kernel).__name__} holds no table {table!r}; it holds {list(holders)}")
        h = holders[table]
        return h.weight, getattr(h, "weight_qscale", None), getattr(h, "weight_qbias", None)
    split = getattr(kernel, "split_embedding_weights_with_scale_bias", None)
    names = [spec[0] for spec in getattr(kernel, "embedding_specs", [])]
    if split is None or table not in names:
        raise KeyError(f"{type(kernel).__name__} is not a quantized kernel holding table {table!r}")
    return tuple(split(split_scale_bias_mode=2)[names.index(table)])  # type: ignore[return-value]

