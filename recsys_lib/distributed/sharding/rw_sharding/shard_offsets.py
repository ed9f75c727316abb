"""Row offsets of row-wise shards per feature (inference bucketization input) and a KJT-matching tensor cast.

``get_embedding_shard_metadata`` reads the plan's shard metadata (rank 0's kernels list every table)::

    table t (10 rows, W=4, features f0 f1): shards at rows 0, 3, 6, 9 → [[0, 3, 6, 9, 10], [0, 3, 6, 9, 10]]
"""

from typing import Any, List, Optional, Tuple

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _even_sizes(rows: int, world_size: int) -> List[int]:
    """Shard sizes of an even row-wise split as TorchRec writes them: full blocks, then the remainder (if the
    rows do not divide evenly by the world size)."""
    block = -(-rows // world_size) if rows > 0 else 1
    sizes = [block] * (rows // block)
    if rows % world_size != 0:
        sizes.append(rows - sum(sizes))
    return sizes


def get_embedding_shard_metadata(
    grouped_embedding_configs_per_rank: List[List[Any]],
) -> Tuple[List[List[int]], bool]:
    """Per feature: the first row of every shard of its table, then the table's row count; and whether every
    table is split evenly (``ceil(R / W)`` rows per shard).

    Args:
        grouped_embedding_configs_per_rank: ``GroupedEmbeddingConfig`` s per rank (rank 0's list every table).

    Returns:
        ``(offsets per feature, is_even_sharding)``.
    """
    world_size = len(grouped_embedding_configs_per_rank)
    offsets_per_feature: List[List[int]] = []
    even = True
    for group in grouped_embedding_configs_per_rank[0]:
        for table in group.embedding_tables:
            shards = table.global_metadata.shards_metadata
            sizes = [int(m.shard_sizes[0]) for m in shards]
            offsets = [int(m.shard_offsets[0]) for m in shards] + [sum(sizes)]
            offsets_per_feature.extend([offsets] * len(table.embedding_names))
            if sizes != _even_sizes(sum(sizes), world_size):
                even = False
    return offsets_per_feature, even


def convert_tensor(t: Optional[torch.Tensor], feature: KeyedJaggedTensor) -> Optional[torch.Tensor]:
    """``t`` on the KJT's device with its values' dtype (``None`` stays ``None``)."""
    if t is None:
        return None
    return t.to(device=feature.device(), dtype=feature.values().dtype)
