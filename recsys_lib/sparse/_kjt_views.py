"""Restructuring a ``KeyedJaggedTensor`` into views: the tensor and host-list work behind ``to_dict``, ``split`` and
``permute``, and ``trusted_jt``, the unchecked per-key ``JaggedTensor``.

These helpers take and return tensors and host lists, never a ``KeyedJaggedTensor``: TorchScript compiles a class's
instance methods while it compiles the class, and a helper whose signature names that class cannot be compiled then
(resolving the annotation would start compiling the class again). The methods wrap the pieces (``_view``).

::

    keys = [f1, f2, f3]           split([1, 2])        -> [f1] | [f2, f3]   (values, lengths: slices, no copy)
    values = [f1 ids | f2 ids | f3 ids]
                                  permute([2, 0])      -> [f3, f1]          (one copy of the moved segments)
                                  to_dict()            -> {f1: JT, f2: JT, f3: JT}   (views; offsets rebased to 0)

Imported by ``jagged_tensor`` after its classes are defined (``trusted_jt`` builds ``JaggedTensor`` s).
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.ops.cumsum import complete_cumsum_rows
from recsys_lib.ops.permute import permute_key_views, permute_rows_by_sizes, permute_segments
from recsys_lib.pt2.checks import pt2_guard_or_false
from recsys_lib.sparse.jagged_tensor import JaggedTensor


def trusted_jt(
    values: torch.Tensor, weights: Optional[torch.Tensor], lengths: torch.Tensor, offsets: Optional[torch.Tensor]
) -> JaggedTensor:
    """A JT made of views of a valid KJT (``to_dict``/``__getitem__``): the input checks are skipped in eager mode."""
    if not torch.jit.is_scripting():
        jt = object.__new__(JaggedTensor)
        jt.__dict__.update(_values=values, _weights=weights, _lengths=lengths, _offsets=offsets)
        return jt
    return JaggedTensor(values=values, weights=weights, lengths=lengths, offsets=offsets)


def jt_dict_from_parts(
    keys: List[str],
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: torch.Tensor,
    length_per_key: List[int],
    stride_per_key: Optional[List[int]],
    compute_offsets: bool,
) -> Dict[str, JaggedTensor]:
    """Per-key JTs as views of the KJT's tensors; offsets (rebased to 0) computed in one batched cumsum."""
    num_keys = len(keys)
    out: Dict[str, JaggedTensor] = {}
    if num_keys == 0:
        return out  # no keys: nothing to view (and lengths.view(0, -1) would be ambiguous)
    total = sum(length_per_key)
    # values past the last bag (TorchRec accepts them) belong to no key; a traced (unbacked) size is trusted
    if pt2_guard_or_false(values.size(0) != total):
        values = values[:total]
        if weights is not None:
            weights = weights[:total]
    values_list = values.split_with_sizes(length_per_key)
    weights_list: Optional[List[torch.Tensor]] = None
    if weights is not None:
        weights_list = list(weights.split_with_sizes(length_per_key))
    offsets_list: Optional[List[torch.Tensor]] = None
    if stride_per_key is None:
        lengths_2d = lengths.view(num_keys, -1)
        lengths_list = list(lengths_2d.unbind(0))
        if compute_offsets:
            offsets_list = list(complete_cumsum_rows(lengths_2d).unbind(0))
    else:
        lengths_list = list(lengths.view(-1).split_with_sizes(stride_per_key))
        if compute_offsets:
            offsets_list = [torch.cat([l.new_zeros(1), l.cumsum(0).to(l.dtype)]) for l in lengths_list]
    for i in range(num_keys):
        w: Optional[torch.Tensor] = None
        if weights_list is not None:
            w = weights_list[i]
        o: Optional[torch.Tensor] = None
        if offsets_list is not None:
            o = offsets_list[i]
        out[keys[i]] = trusted_jt(values_list[i], w, lengths_list[i], o)
    return out


# One piece of a split: keys, values, weights, lengths, stride_per_key_per_rank (VBE), stride_per_key,
# length_per_key, offset_per_key (rebased to the piece).
Piece = Tuple[List[str], torch.Tensor, Optional[torch.Tensor], torch.Tensor, Optional[List[List[int]]], List[int],
              List[int], List[int]]


def split_pieces(
    segments: List[int],
    keys: List[str],
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: torch.Tensor,
    offset_per_key: List[int],
    length_per_key: List[int],
    lengths_offset_per_key: List[int],
    stride_per_key: List[int],
    stride_per_key_per_rank: Optional[List[List[int]]],
) -> List[Piece]:
    """``KeyedJaggedTensor.split``: consecutive groups of ``segments[i]`` keys, as slices (views) of the tensors.

    ``lengths`` is 1-D; ``stride_per_key_per_rank`` is given for a VBE KJT only.
    """
    opk, lopk = offset_per_key, lengths_offset_per_key
    out: List[Piece] = []
    start = 0
    for seg in segments:
        end = start + seg
        v0, v1 = opk[start], opk[end]
        spkpr: Optional[List[List[int]]] = None
        if stride_per_key_per_rank is not None:
            spkpr = stride_per_key_per_rank[start:end]
        seg_lengths = lengths[lopk[start] : lopk[end]]
        if seg == 0:  # an empty segment carries int32 lengths whatever the input's dtype, as in TorchRec
            seg_lengths = torch.empty(0, dtype=torch.int32, device=lengths.device)
        out.append((
            keys[start:end], values[v0:v1], None if weights is None else weights[v0:v1], seg_lengths, spkpr,
            stride_per_key[start:end], length_per_key[start:end], [o - v0 for o in opk[start : end + 1]],
        ))
        start = end
    return out


def permuted_tensors(
    indices: List[int],
    indices_tensor: Optional[torch.Tensor],
    length_per_key: List[int],
    stride_per_key: List[int],
    total: int,
    lengths: torch.Tensor,
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    variable: bool,
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """``KeyedJaggedTensor.permute``: ``(lengths, values, weights)`` of the keys ``indices`` in that order.

    ``total`` is the number of values in bags (``offset_per_key()[-1]``); ``variable``: VBE (rows of unequal size).
    """
    lpk = length_per_key
    if values.size(0) != total:  # values after the last bag (accepted, as in TorchRec) are dropped
        values = values[:total]
        weights = None if weights is None else weights[:total]
    if variable:
        return permute_rows_by_sizes(indices, stride_per_key, lpk, lengths, values, weights)
    if not torch.jit.is_scripting() and total < 65536:
        # Eager, below 64k values, equal rows: each key's lengths and values are contiguous views; one cat each
        # and no index tensor to build (host overhead dominates there). Larger batches take FBGEMM's segment
        # copy below, steadier than torch.cat on a busy CPU.
        return permute_key_views(indices, lpk, lengths, values, weights)
    # Equal rows: the lengths move with one index_select; values and weights as whole per-key segments.
    if indices_tensor is None:
        indices_tensor = torch.tensor(indices, dtype=torch.int32, device=values.device)
    new_lengths = lengths.view(len(lpk), -1).index_select(0, indices_tensor).view(-1)
    new_values, new_weights = permute_segments(indices, indices_tensor, lpk, values, weights)
    return new_lengths, new_values, new_weights
