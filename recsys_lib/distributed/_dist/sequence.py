"""Output distribution of sequence (unpooled) embeddings (EC): ``SequenceEmbeddingsAllToAll``.

On the rank that owns features, the lookup output follows the distributed KJT: feature-major,
and within a feature the ids of rank 0's rows, then rank 1's, ... The all-to-all first re-orders
these (feature, rank) segments rank-major, then sends rank r its segments::

    rank k rows:   [f0 r0 | f0 r1 | f1 r0 | f1 r1]    forward recat → [f0 r0 | f1 r0 | f0 r1 | f1 r1]
    rank r gets:   for each source rank k: k's features of r's rows, ids in sample order

Row-wise sharding passes ``unbucketize_permute_tensor`` to restore the original id order.
"""

from typing import List, Optional

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib._public import public_at
from recsys_lib.distributed._core.awaitable import Awaitable
from recsys_lib.distributed._collectives.codec import QuantizedCommCodecs
from recsys_lib.distributed import comm_ops


def sequence_recat(num_local_features: int, world_size: int) -> List[int]:
    """Forward recat (pure): position i of the rank-major order takes feature-major segment ``recat[i]``.

    Segment ``f*W + r`` holds feature f's ids for rank r; output order is ``for r: for f``.
    """
    return [f * world_size + r for r in range(world_size) for f in range(num_local_features)]


def per_sample_recat(segment_recat: torch.Tensor, batch_size_per_rank: List[int]) -> torch.Tensor:
    """A (feature, rank) segment recat expanded to single samples (pure), for a batch size per rank.

    Segment ``f*W + r`` holds ``batch_size_per_rank[r]`` samples; the result lists, in the order of
    ``segment_recat``, the sample positions of each segment (a permutation of ``F * ΣB_r`` samples).
    """
    w = len(batch_size_per_rank)
    n_seg = int(segment_recat.numel())
    sizes = torch.tensor(batch_size_per_rank * (n_seg // w), dtype=torch.long)
    starts = torch.cumsum(sizes, 0) - sizes
    order = segment_recat.to(torch.long)
    counts = sizes[order]
    total = int(counts.sum().item())
    base = torch.repeat_interleave(starts[order], counts, output_size=total)
    within = torch.arange(total) - torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts, output_size=total)
    return (base + within).to(torch.int32)


@public_at("recsys_lib.distributed.dist_data")
class SequenceEmbeddingsAwaitable(Awaitable[torch.Tensor]):
    """Waits a sequence all-to-all and applies the row-wise unbucketize permutation if one is given."""

    def __init__(
        self,
        tensor_awaitable: Awaitable[torch.Tensor],
        unbucketize_permute_tensor: Optional[torch.Tensor],
        embedding_dim: int,
    ) -> None:
        super().__init__()
        self._tensor_awaitable = tensor_awaitable
        self._unbucketize_permute_tensor = unbucketize_permute_tensor
        self._embedding_dim = embedding_dim
        if unbucketize_permute_tensor is not None:
            self.callbacks.append(
                lambda ret: torch.index_select(ret.view(-1, embedding_dim), 0, unbucketize_permute_tensor.to(torch.long))
            )

    def _wait_impl(self) -> torch.Tensor:
        return self._tensor_awaitable.wait()


@public_at("recsys_lib.distributed.dist_data")
class SequenceEmbeddingsAllToAll(nn.Module):
    """Sends ``[ids, D]`` lookup rows back to the ranks that own the batch rows.

    Args:
        pg: process group.
        features_per_rank: number of features each rank looks up.
        device: device of the outputs.
        codecs: wire codecs.
    """

    def __init__(
        self,
        pg: dist.ProcessGroup,
        features_per_rank: List[int],
        device: Optional[torch.device] = None,
        codecs: Optional[QuantizedCommCodecs] = None,
    ) -> None:
        super().__init__()
        world = dist.get_world_size(pg)
        if len(features_per_rank) != world:
            raise ValueError(f"features_per_rank {features_per_rank} needs one entry per rank ({world})")
        self._pg = pg
        self._world = world
        self._features_per_rank = list(features_per_rank)
        self._local_features = features_per_rank[dist.get_rank(pg)]
        self._device = device
        self._codecs = codecs
        recat = sequence_recat(self._local_features, world)
        self._forward_recat: Optional[torch.Tensor] = torch.tensor(recat, dtype=torch.int32) if recat else None
        self._backward_recat: Optional[torch.Tensor] = (
            torch.argsort(torch.tensor(recat)).to(torch.int32) if recat else None
        )

    def forward(
        self,
        local_embs: torch.Tensor,
        lengths: torch.Tensor,
        input_splits: List[int],
        output_splits: List[int],
        unbucketize_permute_tensor: Optional[torch.Tensor] = None,
        batch_size_per_rank: Optional[List[int]] = None,
        sparse_features_recat: Optional[torch.Tensor] = None,
    ) -> SequenceEmbeddingsAwaitable:
        """
        Args:
            local_embs: ``[Σ ids, D]`` in distributed-KJT order.
            lengths: per-sample lengths of the distributed KJT (``F_local * ΣB_r`` entries).
            input_splits / output_splits: the splits of the sparse-feature all-to-all (ids this rank sent to /
                received from each rank); the embeddings travel the other way.
            unbucketize_permute_tensor: row-wise only: position of each original id in the received order.
            batch_size_per_rank: rows per rank when they differ.
            sparse_features_recat: the per-sample recat of the sparse-feature all-to-all (variable batch); its
                inverse re-orders the rows. Without it a variable batch expands the (feature, rank) recat.
        """
        variable = batch_size_per_rank is not None and len(set(batch_size_per_rank)) > 1
        forward_recat = self._forward_recat
        backward_recat = self._backward_recat
        if sparse_features_recat is not None:
            backward_recat = sparse_features_recat.to(torch.int32)
            forward_recat = torch.argsort(sparse_features_recat.to(torch.long)).to(torch.int32)
        elif variable and forward_recat is not None:
            assert batch_size_per_rank is not None
            forward_recat = per_sample_recat(forward_recat, batch_size_per_rank)
            backward_recat = torch.argsort(forward_recat.to(torch.long)).to(torch.int32)
        if local_embs.dim() != 2:
            raise ValueError(f"sequence all-to-all: local_embs must be [ids, D], got shape {tuple(local_embs.shape)}")
        req = comm_ops.alltoall_sequence(
            local_embs, forward_recat, backward_recat, lengths, input_splits, output_splits,  # type: ignore[arg-type]
            variable_batch_size=variable, group=self._pg, codecs=self._codecs,
        )
        return SequenceEmbeddingsAwaitable(req, unbucketize_permute_tensor, local_embs.size(1))
