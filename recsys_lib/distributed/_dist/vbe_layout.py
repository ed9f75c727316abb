"""Layout math of variable-batch (VBE) pooled embeddings: flat 1-D tensors cut into (rank, feature) blocks.

A pooled lookup over a VBE KJT (``stride_per_key_per_rank[f][r] = B[r][f]`` rows of feature ``f`` from source
``r``) returns one flat tensor, *rank-major*: for each source ``r``, for each feature ``f``, ``B[r][f]`` rows of
``D_f`` values (FBGEMM's VBE output, and what the pooled all-to-all sends: block ``r`` goes back to rank ``r``)::

    B = [[1, 2], [3, 1]]  (r0: f0 1 row, f1 2 rows; r1: f0 3 rows, f1 1 row),  D = [4, 8]
    flat = [r0 f0 (1x4) | r0 f1 (2x8) | r1 f0 (3x4) | r1 f1 (1x8)]     numel 4 + 16 + 12 + 8

After the output dist a rank holds only its own rows, feature-major: ``[f0 (b_0 x D_0) | f1 (b_1 x D_1) | ...]``.
Everything here is pure (sizes and views); the collectives live in the output dists.
"""

from typing import Any, Dict, List, Sequence, Tuple

import torch


def block_sizes(batch_per_rank_per_feature: Sequence[Sequence[int]], dims: Sequence[int]) -> List[int]:
    """Numel of every (rank, feature) block, rank-major: ``B[r][f] * D_f``."""
    return [b * d for per_feature in batch_per_rank_per_feature for b, d in zip(per_feature, dims)]


def transpose(per_feature_per_rank: Sequence[Sequence[int]], num_ranks: int) -> List[List[int]]:
    """``[f][r]`` → ``[r][f]`` (a KJT's ``stride_per_key_per_rank`` into the rank-major order used here)."""
    return [[int(per_feature_per_rank[f][r]) for f in range(len(per_feature_per_rank))] for r in range(num_ranks)]


def merge_groups(
    outputs: List[torch.Tensor],
    batch_per_rank_per_feature: Sequence[Sequence[int]],
    dims_per_group: List[List[int]],
) -> torch.Tensor:
    """Interleaves the flat outputs of several kernels (each rank-major over *its* features) into one flat tensor
    rank-major over all features (groups in order): ``[r][g][f_g]``.

    ``batch_per_rank_per_feature[r]`` lists the batch of every feature of every group, groups concatenated.
    """
    if len(outputs) == 1:
        return outputs[0].reshape(-1)
    num_ranks = len(batch_per_rank_per_feature)
    pieces_per_group: List[List[torch.Tensor]] = []
    start = 0
    for out, dims in zip(outputs, dims_per_group):
        rows = [per_feature[start:start + len(dims)] for per_feature in batch_per_rank_per_feature]
        sizes = [sum(b * d for b, d in zip(rows[r], dims)) for r in range(num_ranks)]
        pieces_per_group.append(list(out.reshape(-1).split(sizes)))
        start += len(dims)
    return torch.cat([pieces_per_group[g][r] for r in range(num_ranks) for g in range(len(outputs))])


def permute_features(
    flat: torch.Tensor,
    batch_per_rank_per_feature: Sequence[Sequence[int]],
    dims: Sequence[int],
    order: Sequence[int],
) -> torch.Tensor:
    """Reorders the feature blocks inside every rank block: output feature ``j`` is input feature ``order[j]``
    (batch sizes and dims given in the *input* feature order)."""
    blocks = flat.reshape(-1).split(block_sizes(batch_per_rank_per_feature, dims))
    num_features = len(dims)
    return torch.cat([blocks[r * num_features + f] for r in range(len(batch_per_rank_per_feature)) for f in order])


def split_features(flat: torch.Tensor, batch_per_feature: Sequence[int], dims: Sequence[int]) -> List[torch.Tensor]:
    """A rank's own feature-major flat embeddings → one ``[b_f, D_f]`` view per feature."""
    sizes = [b * d for b, d in zip(batch_per_feature, dims)]
    if sum(sizes) != flat.numel():
        raise ValueError(
            f"variable-batch pooled embeddings: {flat.numel()} values, but batch sizes {list(batch_per_feature)} and "
            f"dims {list(dims)} need {sum(sizes)}"
        )
    return [block.view(b, d) for block, b, d in zip(flat.reshape(-1).split(sizes), batch_per_feature, dims)]


def combine_column_blocks(
    flat: torch.Tensor,
    batch_per_block: Sequence[int],
    widths: Sequence[int],
    blocks_per_name: List[List[int]],
) -> torch.Tensor:
    """Column-split outputs → one block per name: the blocks ``blocks_per_name[n]`` (column order) of a feature,
    each ``[b, width]``, side by side → ``[b, D]``; the result is feature-major flat again."""
    parts = split_features(flat, batch_per_block, widths)
    out: List[torch.Tensor] = []
    for blocks in blocks_per_name:
        joined = parts[blocks[0]] if len(blocks) == 1 else torch.cat([parts[i] for i in blocks], dim=1)
        out.append(joined.reshape(-1))
    return torch.cat(out) if out else flat.new_zeros(0)


def blocks_per_name(segment_names: Sequence[str], segment_offsets: Sequence[int]) -> List[List[int]]:
    """Segment indices of every name (first-appearance order), sorted by column offset (pure)."""
    by_name: Dict[str, List[int]] = {}
    for i, name in enumerate(segment_names):
        by_name.setdefault(name, []).append(i)
    return [sorted(idx, key=lambda i: segment_offsets[i]) for idx in by_name.values()]


def divide_rows(flat: torch.Tensor, row_divisor: torch.Tensor, row_dims: torch.Tensor) -> torch.Tensor:
    """Divides every row of a feature-major flat tensor by ``row_divisor`` (one value per row; ``row_dims``
    its width): the MEAN of row-split shardings."""
    per_value = torch.repeat_interleave(row_divisor.to(flat.dtype), row_dims.to(flat.device))
    return flat / per_value


def _uniform_blocks(
    batch_per_feature_per_rank: Sequence[Sequence[int]], dims: Sequence[int]
) -> List[Tuple[int, int, int, int]]:
    """``(row0, rows, col0, cols)`` of every (rank, feature) block of the padded ``[B_max, sum D]`` output, in
    rank-major order."""
    num_ranks = len(batch_per_feature_per_rank[0]) if batch_per_feature_per_rank else 0
    col = [0]
    for d in dims:
        col.append(col[-1] + d)
    blocks = []
    for r in range(num_ranks):
        for f, per_rank in enumerate(batch_per_feature_per_rank):
            blocks.append((sum(per_rank[:r]), per_rank[r], col[f], dims[f]))
    return blocks


class _CutBlocks(torch.autograd.Function):
    """Forward: the blocks of a 2-D tensor, flattened and concatenated. Backward: one zero tensor with the
    gradient blocks copied in (autograd's slice backward would allocate a full-size zero tensor per block)."""

    @staticmethod
    def forward(ctx: Any, pooled: torch.Tensor, blocks: List[Tuple[int, int, int, int]]) -> torch.Tensor:
        ctx.blocks = blocks
        ctx.shape = pooled.shape
        pieces = [pooled[r0:r0 + n, c0:c0 + d].reshape(-1) for r0, n, c0, d in blocks]
        return torch.cat(pieces) if pieces else pooled.new_zeros(0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:
        out = grad.new_zeros(ctx.shape)
        start = 0
        for r0, n, c0, d in ctx.blocks:
            out[r0:r0 + n, c0:c0 + d] = grad[start:start + n * d].view(n, d)
            start += n * d
        return out, None


def rank_major_from_uniform(
    pooled: torch.Tensor, batch_per_feature_per_rank: Sequence[Sequence[int]], dims: Sequence[int]
) -> torch.Tensor:
    """``[B_max, sum D]`` pooled over the padded layout of ``recsys_lib.ops.pad_batch.pad_to_uniform_batch`` →
    the VBE flat rank-major tensor (padding rows dropped)."""
    return _CutBlocks.apply(pooled, _uniform_blocks(batch_per_feature_per_rank, dims))
