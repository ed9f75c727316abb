"""Which rows and columns of which quantized table each "rank" (a device of this process) holds: pure values.

A plan entry places a table's shards in the table's *logical* coordinates, ``(R, D)`` with ``R`` the stored
(post-pruning) rows and ``D`` the embedding dim, exactly as for float tables::

    t0 (R=10, D=8)  table_wise on rank 1      ->  rank 1: rows [0, 10)  cols [0, 8)
    t1 (R=12, D=16) row_wise on ranks [0, 1]  ->  rank 0: rows [0, 6)   rank 1: rows [6, 12)   (all cols)
    t2 (R=10, D=16) column_wise on [0, 1]     ->  rank 0: cols [0, 8)   rank 1: cols [8, 16)   (all rows)

A shard's quantized rows are a slice of the table's stored rows: rows ``[r0, r0 + nr)`` and the data bytes of
columns ``[c0, c0 + nc)``; integer types keep each row's fp16 scale and bias, so a shard dequantises to exactly
the same values as the unsharded table.
"""

from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.distributed._sharded.shard_tables import check_shards, shard_rank, spec_shards
from recsys_lib.modules.embedding_configs import DATA_TYPE_NUM_BITS, BaseEmbeddingConfig, PoolingType
from recsys_lib.quant._rows import check_quant_table, split_rows
from recsys_lib.quant._tables import table_rows


@dataclass(frozen=True)
class InferShard:
    """One shard of one table: ``rows`` rows from ``row_offset``, ``cols`` columns from ``col_offset``."""

    table: str
    rank: int
    row_offset: int
    rows: int
    col_offset: int
    cols: int


def table_shards(config: BaseEmbeddingConfig, param_sharding: object, world_size: int) -> List[InferShard]:
    """The shards of one table from its plan entry, checked (ranks in the world, tiling ``(R, D)`` exactly,
    widths the quantized kernels accept, at most one shard of a table per rank)."""
    rows = table_rows(config)
    shards = spec_shards(config.name, param_sharding)
    check_shards(config.name, rows, config.embedding_dim, shards, world_size)
    out: List[InferShard] = []
    for md in shards:
        (r0, c0), (nr, nc) = md.shard_offsets, md.shard_sizes
        if nr == 0:  # an empty row block (e.g. 9 rows over 4 ranks: 3, 3, 3, 0): no ids can reach it
            continue
        check_quant_table(config.name + " (shard at column " + str(c0) + ")", nc, config.data_type)
        out.append(InferShard(config.name, shard_rank(md), int(r0), int(nr), int(c0), int(nc)))
    ranks = [s.rank for s in out]
    if len(set(ranks)) != len(ranks):
        raise ValueError(
            f"table {config.name!r}: inference sharding places at most one shard of a table on a rank, got ranks "
            f"{ranks}"
        )
    return sorted(out, key=lambda s: (s.row_offset, s.col_offset))


def shard_config(config: BaseEmbeddingConfig, shard: InferShard, sum_pooling: bool) -> BaseEmbeddingConfig:
    """The local table of a shard: its rows and columns (rows already post-pruning), SUM pooling if asked."""
    kwargs: Dict[str, object] = dict(num_embeddings=shard.rows, embedding_dim=shard.cols,
                                     num_embeddings_post_pruning=None)
    if sum_pooling and hasattr(config, "pooling"):
        kwargs["pooling"] = PoolingType.SUM
    return replace(config, **kwargs)  # type: ignore[arg-type]


def shard_weights(
    stored_rows: torch.Tensor, config: BaseEmbeddingConfig, shard: InferShard
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``(data (nr, nc*bits/8) uint8, scale_shift (nr, 4) or None)`` of a shard, copied from the table's stored
    rows ``(R, row_bytes)``."""
    data, scale_shift = split_rows(stored_rows, config.embedding_dim, config.data_type)
    bits = DATA_TYPE_NUM_BITS[config.data_type]
    b0 = shard.col_offset * bits // 8
    b1 = (shard.col_offset + shard.cols) * bits // 8
    rows = slice(shard.row_offset, shard.row_offset + shard.rows)
    local_data = data[rows, b0:b1].clone()
    local_qparams = None if scale_shift is None else scale_shift[rows].clone()
    return local_data, local_qparams


def shards_by_rank(shards: List[InferShard], world_size: int) -> List[List[InferShard]]:
    """``[rank] -> shards on that rank`` (in the given order)."""
    out: List[List[InferShard]] = [[] for _ in range(world_size)]
    for s in shards:
        out[s.rank].append(s)
    return out
