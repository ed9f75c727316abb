"""Regroup the column blocks of pooled embeddings (``KeyedTensor.regroup``, ``regroup_kts``).

Each input is a (B, sum(D)) tensor whose columns are blocks of named keys; each output group lists keys, and its
tensor is the concatenation of those blocks along dim 1::

    kt1: [ a(2) | b(1) ]   kt2: [ c(3) ]     groups [["c", "a"], ["b"]]
    ->  [ c | a ] (B, 5),  [ b ] (B, 1)

``plan_regroup`` turns keys into (input, start, length) column slices once (adjacent slices merged); then
``regroup_slices`` (fast path: one ``torch.cat`` of views per group), ``regroup_reference`` (one ``index_select``
per group over all inputs concatenated) and ``regroup_fbgemm`` (``fbgemm.permute_multi_embedding``) all compute the
same result, with autograd.
"""

from typing import Dict, List, Tuple

import torch


def plan_regroup(
    keys_per_input: List[List[str]], lengths_per_input: List[List[int]], groups: List[List[str]]
) -> List[List[Tuple[int, int, int]]]:
    """For each group, the ``(input index, first column, number of columns)`` slices, adjacent ones merged."""
    where: Dict[str, Tuple[int, int, int]] = {}
    for i in range(len(keys_per_input)):
        offset = 0
        keys = keys_per_input[i]
        lengths = lengths_per_input[i]
        for j in range(len(keys)):
            if keys[j] not in where:  # the first input holding a key provides it
                where[keys[j]] = (i, offset, lengths[j])
            offset += lengths[j]
    plan: List[List[Tuple[int, int, int]]] = []
    for group in groups:
        slices: List[Tuple[int, int, int]] = []
        for key in group:
            if key not in where:
                raise ValueError(f"regroup: key '{key}' is in no input KeyedTensor (keys: {keys_per_input})")
            src, start, length = where[key]
            if len(slices) > 0:
                last = slices[-1]
                if last[0] == src and last[1] + last[2] == start:
                    slices[-1] = (src, last[1], last[2] + length)
                    continue
            slices.append((src, start, length))
        plan.append(slices)
    return plan


def regroup_slices(values: List[torch.Tensor], plan: List[List[Tuple[int, int, int]]]) -> List[torch.Tensor]:
    """Fast path: one cat of column views per group (no index tensors, a single copy)."""
    out: List[torch.Tensor] = []
    for slices in plan:
        parts = [values[src].narrow(1, start, length) for src, start, length in slices]
        if len(parts) == 0:  # an empty group: (B, 0), as TorchRec
            out.append(values[0].new_zeros(values[0].size(0), 0))
        elif len(parts) == 1:
            out.append(parts[0].contiguous() if parts[0].size(1) != values[slices[0][0]].size(1) else parts[0])
        else:
            out.append(torch.cat(parts, dim=1))
    return out


def regroup_reference(values: List[torch.Tensor], plan: List[List[Tuple[int, int, int]]]) -> List[torch.Tensor]:
    """Plain torch: concatenate all inputs, then gather each group's columns with one index."""
    widths = [v.size(1) for v in values]
    base = [0]
    for w in widths:
        base.append(base[-1] + w)
    everything = torch.cat(values, dim=1)
    out: List[torch.Tensor] = []
    for slices in plan:
        cols: List[int] = []
        for src, start, length in slices:
            cols.extend(range(base[src] + start, base[src] + start + length))
        index = torch.tensor(cols, dtype=torch.int64, device=everything.device)
        out.append(everything.index_select(1, index))
    return out


def regroup_fbgemm(
    values: List[torch.Tensor],
    keys_per_input: List[List[str]],
    lengths_per_input: List[List[int]],
    groups: List[List[str]],
) -> List[torch.Tensor]:
    """``fbgemm.kt_regroup_arguments`` + ``fbgemm.permute_multi_embedding`` (each key used in the inputs once)."""
    permutes, in_shapes, out_shapes, out_lengths = torch.ops.fbgemm.kt_regroup_arguments(
        values[0], keys_per_input, lengths_per_input, groups
    )
    return torch.ops.fbgemm.permute_multi_embedding(values, permutes, in_shapes, out_shapes, out_lengths)
