"""The KJT all-to-all's layout: ``KeyedJaggedTensor.dist_labels`` / ``dist_tensors`` (what is sent) and
``dist_init`` (the local batch rebuilt after the exchange).

What arrives from ``W`` workers is rank-major: for every source rank ``w`` the local keys ``f`` in order, each with
that rank's batch ``B_w``::

    received lengths: [w0 f0 (B_0) | w0 f1 (B_0) | w1 f0 (B_1) | w1 f1 (B_1)]
    recat (W*F,):      output segment i takes input segment recat[i]; key-major output =
                       [f0 w0 | f0 w1 | f1 w0 | f1 w1]  with recat = [0, 2, 1, 3]

``tensors`` = ``[lengths, values]`` (+ ``strides`` (W*F,) for VBE, holding each (rank, key) batch size) (+ ``weights``),
the order of ``KeyedJaggedTensor.dist_labels()``. ``stagger`` is accepted for TorchRec's signature: the staggered
rank order (TWRW) is carried entirely by ``recat``.

Imported by ``jagged_tensor`` after its classes are defined (``dist_init`` builds a ``KeyedJaggedTensor``; it is a
static method, compiled by TorchScript after the class).
"""

from typing import List, Optional

import torch

from recsys_lib.ops.permute import permute_by_sizes
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _segment_value_sizes(lengths: torch.Tensor, segment_lengths: List[int]) -> List[int]:
    if len(segment_lengths) == 0:
        return []
    seg = torch.tensor([0] + segment_lengths, dtype=torch.int64, device=lengths.device).cumsum(0)
    running = torch.cat([lengths.new_zeros(1).to(torch.int64), lengths.view(-1).to(torch.int64).cumsum(0)])
    sizes: List[int] = (running.index_select(0, seg[1:]) - running.index_select(0, seg[:-1])).tolist()
    return sizes


def dist_init(
    keys: List[str],
    tensors: List[torch.Tensor],
    variable_stride_per_key: bool,
    num_workers: int,
    recat: Optional[torch.Tensor],
    stride_per_rank: Optional[List[int]],
    stagger: int,
) -> KeyedJaggedTensor:
    """The key-major local KJT (``KeyedJaggedTensor.dist_init``)."""
    num_keys = len(keys)
    expected = 2 + (1 if variable_stride_per_key else 0)
    if len(tensors) != expected and len(tensors) != expected + 1:
        raise ValueError(
            f"dist_init: expected {expected} tensors (+1 with weights) for variable_stride_per_key="
            f"{variable_stride_per_key}, got {len(tensors)}"
        )
    lengths, values = tensors[0], tensors[1]
    weights: Optional[torch.Tensor] = None
    if len(tensors) == expected + 1:
        weights = tensors[-1]
    if num_workers <= 0:
        raise ValueError(f"dist_init: num_workers must be > 0, got {num_workers}")
    if variable_stride_per_key:
        strides: List[int] = tensors[2].view(-1).tolist()
        if len(strides) != num_workers * num_keys:
            raise ValueError(
                f"dist_init: strides has {len(strides)} entries, expected num_workers * len(keys) = "
                f"{num_workers * num_keys}"
            )
        segment_lengths = strides
    else:
        if stride_per_rank is None:
            per = lengths.numel() // max(num_workers * num_keys, 1)
            stride_per_rank = [per] * num_workers
        if len(stride_per_rank) != num_workers:
            raise ValueError(f"dist_init: stride_per_rank has {len(stride_per_rank)} entries for {num_workers} workers")
        segment_lengths: List[int] = []  # typed: TorchScript reads an empty literal as List[Tensor]
        for w in range(num_workers):
            for _ in range(num_keys):
                segment_lengths.append(stride_per_rank[w])
    if recat is not None and recat.numel() > 0:
        order: List[int] = recat.view(-1).tolist()
        value_sizes = _segment_value_sizes(lengths, segment_lengths)
        lengths_out = permute_by_sizes(lengths.view(-1), segment_lengths, order)
        values = permute_by_sizes(values, value_sizes, order)
        if weights is not None:
            weights = permute_by_sizes(weights, value_sizes, order)
        lengths = lengths_out
        segment_lengths = [segment_lengths[i] for i in order]
    stride: Optional[int] = None
    spkpr: Optional[List[List[int]]] = None
    if not variable_stride_per_key:
        assert stride_per_rank is not None
        stride = sum(stride_per_rank)
    else:
        # VBE: with a recat the segments are now key-major ([f][w]); without one they are still rank-major ([w][f]),
        # which is only a valid KJT for a single worker.
        per_key: List[List[int]] = []
        for f in range(num_keys):
            if recat is not None and recat.numel() > 0:
                per_key.append(segment_lengths[f * num_workers : (f + 1) * num_workers])
            else:
                per_key.append([segment_lengths[w * num_keys + f] for w in range(num_workers)])
        spkpr = per_key
    return KeyedJaggedTensor(
        keys=keys, values=values, weights=weights, lengths=lengths, stride=stride, stride_per_key_per_rank=spkpr,
        offsets=None, stride_per_key=None, length_per_key=None, lengths_offset_per_key=None, offset_per_key=None,
        index_per_key=None, jt_dict=None, inverse_indices=None,
    )


def dist_labels(variable: bool, weighted: bool) -> List[str]:
    """Names of the tensors a KJT all-to-all sends, in order (``KeyedJaggedTensor.dist_labels``)."""
    labels = ["lengths", "values"]
    if variable:
        labels.append("strides")
    if weighted:
        labels.append("weights")
    return labels


def dist_tensors(
    lengths: torch.Tensor, values: torch.Tensor, weights: Optional[torch.Tensor], stride_per_key: Optional[List[int]]
) -> List[torch.Tensor]:
    """The tensors of ``dist_labels`` (``KeyedJaggedTensor.dist_tensors``); ``stride_per_key`` is given for VBE."""
    tensors = [lengths, values]
    if stride_per_key is not None:
        tensors.append(torch.tensor(stride_per_key, dtype=torch.int64, device=values.device))
    if weights is not None:
        tensors.append(weights)
    return tensors
