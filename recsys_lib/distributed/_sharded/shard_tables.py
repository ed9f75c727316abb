"""From plan entries to table shards (pure functions, no process group).

A ``ParameterSharding`` places a table's shards with an ``EnumerableShardingSpec`` of ``ShardMetadata``
(``shard_offsets``, ``shard_sizes``, ``placement="rank:{r}/{device}"``). :func:`shard_tables_per_rank`
turns the sharding infos of one strategy into ``ShardedEmbeddingTable`` s, grouped by the rank that holds
them, checking the plan on the way (every rank of the world, shards tiling the table exactly)::

    t0 (10 x 8), column_wise on ranks [0, 1]  ->  rank 0: t0 cols [0, 4)   rank 1: t0 cols [4, 8)

All ranks see the same plan, so a bad plan raises the same ``ValueError`` on every rank before any
collective is issued (never a hang).
"""

import dataclasses
from typing import Any, Dict, List, Optional

import torch
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharded_tensor import ShardedTensorMetadata, TensorProperties
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed._sharded.table_types import EmbeddingComputeKernel, ShardedEmbeddingTable
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, data_type_to_dtype


def shard_rank(md: ShardMetadata) -> int:
    """The rank of a shard's placement (``"rank:3/cpu"`` → 3)."""
    placement = md.placement
    if placement is None or placement.rank() is None:
        raise ValueError(f"shard {md} has no rank in its placement")
    return int(placement.rank())


def spec_shards(table: str, ps: Any) -> List[ShardMetadata]:
    """The shards of a plan entry; ``ValueError`` naming the table when the spec is missing or not enumerable."""
    spec = ps.sharding_spec
    if not isinstance(spec, EnumerableShardingSpec) or len(spec.shards) == 0:
        raise ValueError(
            f"table {table!r}: sharding type {ps.sharding_type!r} needs an EnumerableShardingSpec with at least "
            f"one shard, got {spec!r}"
        )
    return list(spec.shards)


def check_shards(table: str, rows: int, cols: int, shards: List[ShardMetadata], world_size: int) -> None:
    """Every shard on a rank of the world, inside the table, and together covering it exactly once."""
    area = 0
    for md in shards:
        r = shard_rank(md)
        if not 0 <= r < world_size:
            raise ValueError(
                f"table {table!r}: a shard is placed on rank {r}, but the world size is {world_size} "
                f"(ranks must be in [0, {world_size}))"
            )
        (r0, c0), (nr, nc) = md.shard_offsets, md.shard_sizes
        if r0 < 0 or c0 < 0 or nr < 0 or nc <= 0 or r0 + nr > rows or c0 + nc > cols:
            raise ValueError(
                f"table {table!r} ({rows} x {cols}): shard at offsets {list(md.shard_offsets)} with sizes "
                f"{list(md.shard_sizes)} lies outside the table"
            )
        area += nr * nc
    if area != rows * cols:
        raise ValueError(
            f"table {table!r} ({rows} x {cols}): shards cover {area} elements, expected {rows * cols} "
            f"(shards must tile the table exactly)"
        )


def global_metadata(config: EmbeddingTableConfig, shards: List[ShardMetadata]) -> ShardedTensorMetadata:
    """The ``ShardedTensorMetadata`` of a table's weight."""
    props = TensorProperties(
        dtype=data_type_to_dtype(config.data_type), layout=torch.strided, requires_grad=False,
        memory_format=torch.contiguous_format,
    )
    return ShardedTensorMetadata(
        shards_metadata=shards, size=torch.Size([config.num_embeddings, config.embedding_dim]), tensor_properties=props
    )


def make_table(
    config: EmbeddingTableConfig,
    compute_kernel: str,
    local_rows: int,
    local_cols: int,
    local_metadata: Optional[ShardMetadata],
    global_md: Optional[ShardedTensorMetadata],
    fused_params: Optional[Dict[str, Any]],
) -> ShardedEmbeddingTable:
    """A ``ShardedEmbeddingTable``: ``config``'s fields plus the shard's size, placement and kernel."""
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(EmbeddingTableConfig)}
    fields["feature_names"] = list(config.feature_names)
    fields["embedding_names"] = list(config.embedding_names)
    return ShardedEmbeddingTable(
        **fields,
        compute_kernel=EmbeddingComputeKernel(compute_kernel),
        local_rows=local_rows,
        local_cols=local_cols,
        local_metadata=local_metadata,
        global_metadata=global_md,
        fused_params=fused_params,
    )


def shard_tables_per_rank(sharding_infos: List[Any], world_size: int) -> List[List[ShardedEmbeddingTable]]:
    """``out[r]`` = the shards rank ``r`` holds, in (table, shard) order (see the module docstring)."""
    out: List[List[ShardedEmbeddingTable]] = [[] for _ in range(world_size)]
    for info in sharding_infos:
        config, ps = info.embedding_config, info.param_sharding
        shards = spec_shards(config.name, ps)
        check_shards(config.name, config.num_embeddings, config.embedding_dim, shards, world_size)
        gmd = global_metadata(config, shards)
        for md in shards:
            table = make_table(
                config, ps.compute_kernel, md.shard_sizes[0], md.shard_sizes[1], md, gmd, info.fused_params
            )
            out[shard_rank(md)].append(table)
    return out


def replicated_tables(sharding_infos: List[Any]) -> List[ShardedEmbeddingTable]:
    """Whole-table "shards" with no placement (data parallel: every rank holds every table)."""
    return [
        make_table(
            info.embedding_config, info.param_sharding.compute_kernel,
            info.embedding_config.num_embeddings, info.embedding_config.embedding_dim, None, None, info.fused_params,
        )
        for info in sharding_infos
    ]
