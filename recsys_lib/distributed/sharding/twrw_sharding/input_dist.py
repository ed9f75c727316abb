"""``TwRwSparseFeaturesDist``: table-row-wise input dist, row-wise bucketing inside a host, keys sent rank-major.

Features of host ``h``'s tables are cut into ``L`` row blocks (``ceil(R / L)`` rows, one per local rank); rank
``h*L + j`` receives bucket ``j`` of host ``h``'s features from every rank, sources staggered by local rank (see
``pooled.py``)::

    W=4, L=2, host 0: f0 (R=10), host 1: f1 (R=6)      features_per_rank [1, 1, 1, 1]
    rank 0: f0 ids in [0, 5)    rank 1: f0 ids in [5, 10) (as local rows)    rank 2: f1 [0, 3)    rank 3: f1 [3, 6)
"""

from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed.embedding_sharding import BaseSparseFeaturesDist
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets
from recsys_lib.distributed.sharding.rw_sharding.layout import row_sizes
from recsys_lib.distributed.sharding.rw_sharding.pooled import RwSparseFeaturesDist


def rank_major_key_order(features_per_host: List[int], local_world_size: int) -> List[int]:
    """Permutation of bucket-major keys (``bucket j: all features, host-major``) into rank-major order:
    rank ``h*L + j`` takes bucket ``j`` of host ``h``'s features (pure).

    Example: hosts with ``[2, 1]`` features, L=2 → ``[0, 1, 3, 4, 2, 5]``.
    """
    total = sum(features_per_host)
    starts = [sum(features_per_host[:h]) for h in range(len(features_per_host))]
    return [j * total + starts[h] + i for h, n in enumerate(features_per_host) for j in range(local_world_size)
            for i in range(n)]


def host_features(features_per_rank: List[int], local_size: int) -> List[int]:
    """Features per host from features per rank (every rank of a host gets the host's features)."""
    world = len(features_per_rank)
    if local_size < 1 or world % local_size:
        raise ValueError(f"table-row-wise input dist: {world} ranks do not split into hosts of {local_size}")
    per_host = [features_per_rank[h * local_size] for h in range(world // local_size)]
    for r, n in enumerate(features_per_rank):
        if n != per_host[r // local_size]:
            raise ValueError(f"table-row-wise input dist: features_per_rank {features_per_rank} differ within host "
                             f"{r // local_size}")
    return per_host


@public_at("recsys_lib.distributed.sharding.twrw_sharding")
class TwRwSparseFeaturesDist(RwSparseFeaturesDist):
    """Bucketizes each feature over the ranks of its table's host and all-to-alls the buckets (module docstring).

    Args:
        pg: process group of all ``W`` ranks.
        local_size: ranks per host ``L``.
        features_per_rank: features each rank receives (host ``h``'s features on each of its ranks), in the
            sharding's host-major feature order.
        feature_hash_sizes: table rows of each feature.
        device: kept for TorchRec's signature (tensors follow the input).
        has_feature_processor: send each id's position in its bag as its weight when the KJT has no weights.
        need_pos: send positions as weights when the KJT has weights.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        local_size: int,
        features_per_rank: List[int],
        feature_hash_sizes: List[int],
        device: Optional[torch.device] = None,
        has_feature_processor: bool = False,
        need_pos: bool = False,
    ) -> None:
        world = dist.get_world_size(pg)
        if len(features_per_rank) != world:
            raise ValueError(f"TwRwSparseFeaturesDist: features_per_rank has {len(features_per_rank)} entries for "
                             f"{world} ranks")
        per_host = host_features(features_per_rank, local_size)
        if sum(per_host) != len(feature_hash_sizes):
            raise ValueError(f"TwRwSparseFeaturesDist: {len(feature_hash_sizes)} feature_hash_sizes for "
                             f"{sum(per_host)} features")
        bounds: List[Tuple[int, ...]] = []
        for rows in feature_hash_sizes:
            b = [0]
            for n in row_sizes(rows, local_size):
                b.append(b[-1] + n)
            bounds.append(tuple(b))
        buckets = RowBuckets((), tuple(int(r) for r in feature_hash_sizes), tuple(bounds))
        # Not the row-wise constructor (rows over all W ranks): a host's features go over its L ranks, rank-major.
        BaseSparseFeaturesDist.__init__(self)
        self._setup(pg, buckets, None, False, has_feature_processor, need_pos,
                    rank_major_key_order(per_host, local_size), list(features_per_rank), world // local_size)
        self._device = device
