"""``RwSparseFeaturesWriteDist``: row-wise write dist, sends embedding rows to be written to the ranks owning them.

Input: a KJT whose ``values`` are table rows (ids) and whose ``weights`` are the new rows ``(N, D)``. Ids are
bucketized by row block exactly as the row-wise input dist does, and each id's row travels with it::

    W=2, R=10 (blocks [0, 5) | [5, 10)), rank 0 writes ids | 7 1 | with rows [r7, r1]
      -> rank 0 receives id 1 with r1,   rank 1 receives id 2 (= 7 - 5) with r7

Per call: one all-to-all of the id counts, the ``KJTAllToAll`` of the ids (splits, then tensors), and one
all-to-all of the rows; the result (on the second ``wait``) is this rank's KJT, features in the sharding's
order, sources in rank order, ``weights`` the received rows.
"""

from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._collectives.waits import wait_work
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._dist.kjt import KJTAllToAll
from recsys_lib.distributed._sharded.body import check_ids
from recsys_lib.distributed._sharded.table_types import BaseEmbeddingUpdate
from recsys_lib.distributed.embedding_sharding import BaseSparseFeaturesWriteDist
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets
from recsys_lib.distributed.sharding.rw_sharding.pooled import bucketize_features, default_row_buckets, restore_global_ids
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def source_to_feature_major(counts: torch.Tensor) -> torch.Tensor:
    """Index that reorders rows laid out ``[source][feature]`` into ``[feature][source]`` (pure).

    Args:
        counts: ``(W, F)`` rows received from each source for each feature.

    Example: counts ``[[1, 2], [1, 0]]`` (rows ``s0f0 s0f1 s0f1 s1f0``) → ``[0, 3, 1, 2]``.
    """
    flat = counts.reshape(-1)
    starts = torch.cumsum(flat, 0) - flat
    order = starts.view(counts.shape).t().reshape(-1)
    sizes = counts.t().reshape(-1)
    if sizes.numel() == 0 or int(sizes.sum()) == 0:
        return torch.zeros(0, dtype=torch.int64)
    within = torch.arange(int(sizes.sum())) - torch.repeat_interleave(torch.cumsum(sizes, 0) - sizes, sizes)
    return torch.repeat_interleave(order, sizes) + within


class _RowsAwaitable(Awaitable[KeyedJaggedTensor]):
    """The ids' KJT all-to-all, then the rows' all-to-all; ``wait()`` gives the KJT with its rows as weights."""

    def __init__(self, ids: Awaitable[KeyedJaggedTensor], rows: torch.Tensor, send: List[int],
                 counts: torch.Tensor, pg: dist.ProcessGroup) -> None:
        super().__init__()
        self._ids = ids
        self._rows = rows
        self._send = send
        self._counts = counts
        self._pg = pg

    def _wait_impl(self) -> KeyedJaggedTensor:
        kjt = self._ids.wait()
        recv = self._counts.sum(1).tolist()
        out = self._rows.new_empty((int(sum(recv)), self._rows.size(1)))
        work = dist.all_to_all_single(out, self._rows.contiguous(), recv, self._send, group=self._pg, async_op=True)
        wait_work(work, "RwSparseFeaturesWriteDist rows (all_to_all_single)", self._pg)
        rows = out.index_select(0, source_to_feature_major(self._counts).to(out.device))
        return KeyedJaggedTensor(keys=kjt.keys(), values=kjt.values(), lengths=kjt.lengths(), weights=rows,
                                 stride=kjt.stride())


class _SplitsAwaitable(Awaitable[Awaitable[KeyedJaggedTensor]]):
    """The ids' split sizes in flight; ``wait()`` issues the ids' tensors and hands them to ``then``."""

    def __init__(self, ids: Awaitable[Awaitable[KeyedJaggedTensor]],
                 then: Callable[[Awaitable[KeyedJaggedTensor]], Awaitable[KeyedJaggedTensor]]) -> None:
        super().__init__()
        self._ids = ids
        self._then = then

    def _wait_impl(self) -> Awaitable[KeyedJaggedTensor]:
        return self._then(self._ids.wait())


@public_at("recsys_lib.distributed.sharding.rw_sharding")
class RwSparseFeaturesWriteDist(BaseSparseFeaturesWriteDist[KeyedJaggedTensor]):
    """Bucketizes written ids by row block and sends them, with their rows, to the owning ranks (module docstring).

    Args:
        pg: process group (``W`` ranks, one row block each).
        num_features: features of the KJTs it receives.
        feature_hash_sizes: table rows of each feature (blocks of ``ceil(R / W)``).
        feature_total_num_buckets: per feature, hash buckets (whole buckets per rank, as ``row_wise(num_buckets)``).
        device: kept for TorchRec's signature (tensors follow the input).
        is_sequence: keep the last call's unbucketize permutation in ``unbucketize_permute_tensor``.
        keep_original_indices: send table rows instead of rows local to the block.
        zch_sizes: per feature, the zero-collision table size (kept; buckets come from the counts above).
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        num_features: int,
        feature_hash_sizes: List[int],
        feature_total_num_buckets: Optional[List[int]] = None,
        device: Optional[torch.device] = None,
        is_sequence: bool = False,
        keep_original_indices: bool = False,
        zch_sizes: Optional[List[int]] = None,
    ) -> None:
        super().__init__()
        if len(feature_hash_sizes) != num_features:
            raise ValueError(f"RwSparseFeaturesWriteDist: {len(feature_hash_sizes)} feature_hash_sizes for "
                             f"{num_features} features")
        buckets = default_row_buckets(feature_hash_sizes, dist.get_world_size(pg), feature_total_num_buckets)
        self._setup(pg, buckets, is_sequence, keep_original_indices)
        self._zch_sizes = zch_sizes
        self._device = device

    @classmethod
    def from_row_buckets(cls, pg: dist.ProcessGroup, buckets: RowBuckets,
                         is_sequence: bool = False) -> "RwSparseFeaturesWriteDist":
        """The write dist of a sharding, from its plan's row boundaries (uneven row blocks included)."""
        out = cls.__new__(cls)
        BaseSparseFeaturesWriteDist.__init__(out)
        out._setup(pg, buckets, is_sequence, False)
        return out

    def _setup(self, pg: dist.ProcessGroup, buckets: RowBuckets, is_sequence: bool, keep_original_indices: bool) -> None:
        self._pg = pg
        self._world = dist.get_world_size(pg)
        self._num_features = len(buckets.rows)
        self._buckets = buckets
        self._dist = KJTAllToAll(pg, [self._num_features] * self._world)
        self._is_sequence = is_sequence
        self._keep_original_indices = keep_original_indices
        self._zch_sizes: Optional[List[int]] = None
        self._device: Optional[torch.device] = None
        self.unbucketize_permute_tensor: Optional[torch.Tensor] = None

    def forward(self, embeddings: KeyedJaggedTensor) -> Awaitable[Awaitable[KeyedJaggedTensor]]:
        rows = embeddings.weights_or_none()
        if rows is None or rows.dim() != 2 or rows.size(0) != embeddings.values().numel():
            got = None if rows is None else tuple(rows.shape)
            raise ValueError(f"RwSparseFeaturesWriteDist: weights must be the rows to write, (N={embeddings.values().numel()}, D); "
                             f"got {got}")
        ids = KeyedJaggedTensor(keys=embeddings.keys(), values=embeddings.values(), lengths=embeddings.lengths(),
                                stride=embeddings.stride())
        check_ids(ids, self._buckets.rows, "row-wise write dist")
        bucketized, permute = bucketize_features(ids, self._buckets, sequence=True)
        if permute is None:  # one bucket: order unchanged
            permute = torch.arange(rows.size(0), device=rows.device)
        if self._keep_original_indices:
            bucketized = restore_global_ids(bucketized, self._buckets)
        self.unbucketize_permute_tensor = permute if self._is_sequence else None
        bucket_rows = rows.new_empty(rows.shape).index_copy_(0, permute.to(rows.device), rows)
        per_key = torch.tensor(bucketized.length_per_key(), dtype=torch.int64).view(self._world, self._num_features)
        counts = torch.empty_like(per_key)  # (W sources, F): what each rank sends me per feature
        work = dist.all_to_all_single(counts.view(-1), per_key.view(-1).contiguous(), group=self._pg, async_op=True)
        wait_work(work, "RwSparseFeaturesWriteDist counts (all_to_all_single)", self._pg)
        send, pg = per_key.sum(1).tolist(), self._pg
        return _SplitsAwaitable(self._dist(bucketized), lambda ids: _RowsAwaitable(ids, bucket_rows, send, counts, pg))


class RowWriteUpdate(BaseEmbeddingUpdate[KeyedJaggedTensor]):
    """Writes received rows into a lookup's local tables: ``forward(KJT)``, ``values`` local row ids of each
    feature's table, ``weights`` the rows ``(N, D)`` (what :class:`RwSparseFeaturesWriteDist` delivers).

    Args:
        lookup: the sharding's lookup (its kernels hold the local rows; written in place, no autograd).
    """

    def __init__(self, lookup: nn.Module) -> None:
        super().__init__()
        self._lookup = lookup
        self._where: Dict[str, Tuple[int, int]] = {}
        for k, config in enumerate(lookup._grouped_configs):
            for t, table in enumerate(config.embedding_tables):
                for f in table.feature_names:
                    self._where[f] = (k, t)

    def forward(self, embeddings: KeyedJaggedTensor) -> None:
        rows = embeddings.weights()
        kernels = self._lookup._emb_modules
        with torch.no_grad():
            for key, ids, block in zip(embeddings.keys(), embeddings.values().split(embeddings.length_per_key()),
                                       rows.split(embeddings.length_per_key())):
                if key not in self._where:
                    raise ValueError(f"RowWriteUpdate: feature {key!r} has no local table (local: {sorted(self._where)})")
                if ids.numel() == 0:
                    continue
                k, t = self._where[key]
                weight = kernels[k].split_embedding_weights()[t]
                weight.index_copy_(0, ids.to(weight.device).long(), block.to(device=weight.device, dtype=weight.dtype))
