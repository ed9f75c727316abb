"""Reorder contiguous segments of jagged data (the kernel behind ``KJT.permute``, ``split``-free regrouping and
``dist_init``'s rank-major → key-major recat).

A 2-D jagged batch has rows (keys) of lengths; values are stored row after row::

    lengths (F=2, B=3)      values
    f0: [2, 0, 1]           [a a | | b]
    f1: [1, 1, 2]           [c | d | e e]
    permute [1, 0]  ->  lengths [[1,1,2],[2,0,1]], values [c d e e a a b]

Three variants, all returning ``(lengths, values, weights)``:

* ``*_reference``: one gather index built with plain torch (readable, no host sizes needed);
* ``*_fbgemm``: ``fbgemm.permute_2D_sparse_data``;
* ``permute_segments`` / ``permute_rows_by_sizes``: the KJT path, when the per-key value counts are known on the
  host (``length_per_key``): each key's values are one contiguous segment, so a key permutation moves F segments
  instead of F*B bags — with ``fbgemm.permute_1D_sparse_data`` over the segments, or one ``torch.cat`` of views.
"""

from typing import List, Optional, Tuple

import torch

from recsys_lib.ops._fbgemm import FBGEMM_AVAILABLE
from recsys_lib.ops.cumsum import complete_cumsum


def _gather_index(row_sizes: torch.Tensor, permute: torch.Tensor) -> torch.Tensor:
    # Index into the flat data so that out = data[index] concatenates rows in `permute` order.
    starts = complete_cumsum(row_sizes)[:-1]
    out_sizes = row_sizes.index_select(0, permute)
    total = int(out_sizes.sum().item())
    out_starts = complete_cumsum(out_sizes)[:-1]
    src_start = starts.index_select(0, permute)
    pos = torch.arange(total, device=row_sizes.device, dtype=torch.int64)
    shift = torch.repeat_interleave((src_start - out_starts).to(torch.int64), out_sizes.to(torch.int64), output_size=total)
    return pos + shift


def permute_2d_sparse_data_reference(
    permute: torch.Tensor, lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Plain torch. ``lengths``: (F, B); ``permute``: (F',) row ids (repeats allowed); values/weights: (sum(L), ...)."""
    permute = permute.to(torch.int64)
    index = _gather_index(lengths.sum(1), permute)
    out_weights: Optional[torch.Tensor] = None
    if weights is not None:
        out_weights = weights.index_select(0, index)
    return lengths.index_select(0, permute), values.index_select(0, index), out_weights


def permute_2d_sparse_data_fbgemm(
    permute: torch.Tensor, lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``fbgemm.permute_2D_sparse_data`` (lengths must be int32/int64, permute int32)."""
    out = torch.ops.fbgemm.permute_2D_sparse_data(permute.to(torch.int32), lengths, values, weights, None)
    return out[0], out[1], out[2]


def permute_1d_segments_reference(
    permute: torch.Tensor, segment_lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Reorder variable-size segments: segment ``i`` holds ``segment_lengths[i]`` consecutive values."""
    permute = permute.to(torch.int64)
    index = _gather_index(segment_lengths, permute)
    out_weights: Optional[torch.Tensor] = None
    if weights is not None:
        out_weights = weights.index_select(0, index)
    return segment_lengths.index_select(0, permute), values.index_select(0, index), out_weights


def permute_1d_segments_fbgemm(
    permute: torch.Tensor, segment_lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``fbgemm.permute_1D_sparse_data``."""
    out = torch.ops.fbgemm.permute_1D_sparse_data(permute.to(torch.int32), segment_lengths, values, weights, None)
    return out[0], out[1], out[2]


def permute_by_sizes(data: torch.Tensor, sizes: List[int], order: List[int]) -> torch.Tensor:
    """``cat([chunk_i for i in order])`` where ``data`` is cut into chunks of ``sizes`` along dim 0 (host sizes)."""
    if len(order) == len(sizes):
        identity = True
        for i, o in enumerate(order):
            if i != o:
                identity = False
                break
        if identity:
            return data
    chunks = data.split_with_sizes(sizes)
    if len(order) == 1:
        return chunks[order[0]]
    return torch.cat([chunks[i] for i in order])


def permute_segments_cat(
    order: List[int], order_tensor: torch.Tensor, sizes: List[int], data: torch.Tensor, weights: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Plain torch: one ``cat`` of contiguous views (any dtype, any trailing dims)."""
    out_w: Optional[torch.Tensor] = None
    if weights is not None:
        out_w = permute_by_sizes(weights, sizes, order)
    return permute_by_sizes(data, sizes, order), out_w


def permute_segments_fbgemm(
    order: List[int], order_tensor: torch.Tensor, sizes: List[int], data: torch.Tensor, weights: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """``fbgemm.permute_1D_sparse_data`` with whole segments (keys) as its rows: one kernel for data and weights.

    Not differentiable (FBGEMM returns weights detached from the input's graph).
    """
    seg = torch.tensor(sizes, dtype=torch.int64, device=data.device)
    total = 0
    for i in order:
        total += sizes[i]
    out = torch.ops.fbgemm.permute_1D_sparse_data(order_tensor.to(torch.int32), seg, data, weights, total)
    return out[1], out[2]


def _permute_segments_fast(
    order: List[int], order_tensor: torch.Tensor, sizes: List[int], data: torch.Tensor, weights: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    # FBGEMM's kernel is single-pass and, unlike torch.cat's parallel path, stays steady on a busy CPU. It lacks
    # float64 and n-D data, and it does not propagate gradients: those take the (differentiable) cat path.
    if data.dim() == 1 and data.dtype != torch.float64 and not data.requires_grad:
        if weights is None:
            return permute_segments_fbgemm(order, order_tensor, sizes, data, weights)
        if weights.dtype != torch.float64 and not weights.requires_grad:
            return permute_segments_fbgemm(order, order_tensor, sizes, data, weights)
    return permute_segments_cat(order, order_tensor, sizes, data, weights)


# Dispatch chosen once at import: segments of ``sizes`` (host list) reordered as ``order`` (repeats allowed).
permute_segments = _permute_segments_fast if FBGEMM_AVAILABLE else permute_segments_cat


def permute_rows_by_sizes(
    order: List[int],
    row_lengths: List[int],
    row_value_sizes: List[int],
    lengths: torch.Tensor,
    values: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Rows of ``row_lengths[i]`` lengths holding ``row_value_sizes[i]`` values, moved whole (host sizes known).

    Works for equal and variable (VBE) rows alike; no host sync.
    """
    order_tensor = torch.tensor(order, dtype=torch.int32, device=values.device)
    out_lengths, _ = permute_segments(order, order_tensor, row_lengths, lengths.view(-1), None)
    out_values, out_weights = permute_segments(order, order_tensor, row_value_sizes, values, weights)
    return out_lengths, out_values, out_weights


def permute_key_views(
    order: List[int], value_sizes: List[int], lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Equal rows (``lengths`` is ``(F*B,)``), eager: ``(lengths, values, weights)`` with rows in ``order``.

    Each row's lengths and values are contiguous views; every output is one ``torch.cat`` of views (a single
    memory copy into a new tensor, no index tensor to build). Differentiable in values and weights.
    """
    if len(order) == 0:
        return lengths[:0].clone(), values[:0].clone(), None if weights is None else weights[:0].clone()
    rows = lengths.view(len(value_sizes), -1).unbind(0)
    out_lengths = torch.cat([rows[i] for i in order])
    chunks = values.split_with_sizes(value_sizes)
    out_values = torch.cat([chunks[i] for i in order])
    out_weights: Optional[torch.Tensor] = None
    if weights is not None:
        w_chunks = weights.split_with_sizes(value_sizes)
        out_weights = torch.cat([w_chunks[i] for i in order])
    return out_lengths, out_values, out_weights
