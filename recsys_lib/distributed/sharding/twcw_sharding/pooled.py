"""Table-column-wise pooled sharding (EBC): column-wise sharding whose shards stay on one host.

Rank → columns (table R x 16 on host 0 of two hosts with 2 ranks each, blocks of 8)::

    rank 0: rows [0, R), cols [0, 8)      rank 1: rows [0, R), cols [8, 16)      ranks 2, 3: nothing of it

It composes column-wise (same dists, same permutation); only the placement rule differs and is checked
here (:func:`check_one_host`). EC has no table-column-wise sharding.
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.distributed._sharded.shard_tables import shard_rank
from recsys_lib.distributed.embedding_sharding import EmbeddingSharding, EmbeddingShardingContext
from recsys_lib.distributed.sharding._delegate import DelegatedSharding
from recsys_lib.distributed.sharding.cw_sharding.pooled import CwPooledEmbeddingSharding
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed._core.env import ShardingEnv
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def check_one_host(sharding_infos: List[Any], local_world_size: int) -> None:
    """Every table's shards sit on the ranks of a single host (``rank // local_world_size`` equal)."""
    for info in sharding_infos:
        spec = info.param_sharding.sharding_spec
        hosts = sorted({shard_rank(md) // local_world_size for md in getattr(spec, "shards", []) or []})
        if len(hosts) > 1:
            raise ValueError(
                f"table {info.embedding_config.name!r}: table_column_wise shards must be on one host, but they are "
                f"on hosts {hosts} (local world size {local_world_size})"
            )


class TwCwPooledEmbeddingSharding(
    DelegatedSharding,
    EmbeddingSharding[EmbeddingShardingContext, KeyedJaggedTensor, torch.Tensor, torch.Tensor],
):
    """Table-column-wise pooled sharding (see the module docstring). Args as ``CwPooledEmbeddingSharding``."""

    def __init__(
        self,
        sharding_infos: List[Any],
        env: ShardingEnv,
        device: Optional[torch.device] = None,
        permute_embeddings: bool = False,
        qcomm_codecs_registry: Optional[Dict[str, QuantizedCommCodecs]] = None,
    ) -> None:
        super().__init__(qcomm_codecs_registry=qcomm_codecs_registry)
        check_one_host(sharding_infos, env.local_world_size)
        self._inner = CwPooledEmbeddingSharding(sharding_infos, env, device, permute_embeddings, qcomm_codecs_registry)
