"""Lookups of the quantized collections: KJT → kernel inputs, and the plain-PyTorch reference kernels.

A collection's tables are grouped (one FBGEMM TBE per group); within a group the kernel reads the features in
the collection's order, key-major as a KJT stores them::

    features (group)   f0            f1
    indices            |ids f0|      |ids f1|                (N,)
    offsets            0 .. B bags   .. B bags               (F_group*B + 1,)  starting at 0

The fast path calls the TBE (``torch.ops.fbgemm.int_nbit_split_embedding_*``); the reference dequantises the
looked-up rows (``_rows.dequantize_rows``) and pools them with ``torch.embedding_bag``. Tests run both.
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.modules._feature_layout import all_ids_below, check_ids, check_keys
from recsys_lib.types import DataType
from recsys_lib.quant._rows import dequantize_rows
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

def kernel_inputs(
    features: KeyedJaggedTensor,
    feature_order: List[str],
    all_features: Dict[str, int],
    group_bounds: List[int],
    rows_per_feature: List[int],
    table_per_feature: List[str],
    is_weighted: bool,
    owner: str,
    check: bool = True,
) -> List[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]]:
    """Per group ``(indices (N_g,), offsets (F_g*B+1,), per-id weights (N_g,) or None)``.

    Args:
        feature_order: the collection's features, group by group (``group_bounds[g]:group_bounds[g+1]``).
        rows_per_feature: stored rows of each feature's table (ids must be below it).
        check: range-check the ids here (``False``: the caller checks them, as the threaded lookup does per part).
    Raises ``ValueError`` on unknown or missing keys, variable-batch input, ids out of range, or missing weights.
    """
    index = check_keys(features.keys(), all_features, owner)
    if features.variable_stride_per_key():
        raise ValueError(owner + ": variable-batch (VBE) KeyedJaggedTensors are not supported by quantized lookups")
    if features.keys() != feature_order:
        order: List[int] = []
        for f in feature_order:
            order.append(index[f])
        features = features.permute(order)
    values = features.values()
    offsets = features.offsets()
    opk = features.offset_per_key()
    stride = features.stride()
    if check and not all_ids_below(values, min(rows_per_feature)):
        for i in range(len(feature_order)):
            check_ids(values[opk[i]: opk[i + 1]], rows_per_feature[i], table_per_feature[i])
    weights: Optional[torch.Tensor] = None
    if is_weighted:
        weights = features.weights_or_none()
        if weights is None:
            raise ValueError(owner + "(is_weighted=True) needs a KeyedJaggedTensor with weights")
        weights = weights.float()
    out: List[Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]] = []
    for g in range(len(group_bounds) - 1):
        a = group_bounds[g]
        b = group_bounds[g + 1]
        lo = opk[a]
        hi = opk[b]
        o = offsets[a * stride: b * stride + 1]
        if lo != 0:
            o = o - lo
        o = o.to(values.dtype)
        w: Optional[torch.Tensor] = None
        if weights is not None:
            w = weights[lo:hi]
        out.append((values[lo:hi], o, w))
    return out


@torch.jit.ignore
def pooled_reference(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    weights: Optional[torch.Tensor],
    rows: List[torch.Tensor],
    dims: List[int],
    data_types: List[str],
    feature_table_map: List[int],
    mean: bool,
    output_dtype: torch.dtype,
) -> torch.Tensor:
    """Dequantise the looked-up rows and pool each feature's bags. Returns ``(B, sum over features of D)``."""
    num_features = len(feature_table_map)
    stride = (offsets.numel() - 1) // num_features
    pooled: List[torch.Tensor] = []
    for f in range(num_features):
        t = feature_table_map[f]
        bag_offsets = offsets[f * stride: (f + 1) * stride + 1]
        lo = int(bag_offsets[0])
        hi = int(bag_offsets[-1])
        ids = indices[lo:hi].long()
        dense = dequantize_rows(rows[t].index_select(0, ids), dims[t], DataType(data_types[t]))
        w = None if weights is None else weights[lo:hi]
        out = torch.nn.functional.embedding_bag(
            torch.arange(hi - lo, device=ids.device), dense, (bag_offsets - lo).long(),
            mode="mean" if mean else "sum", per_sample_weights=w, include_last_offset=True,
        )
        pooled.append(out)
    return torch.cat(pooled, dim=1).to(output_dtype)


@torch.jit.ignore
def sequence_reference(
    indices: torch.Tensor,
    offsets: torch.Tensor,
    rows: List[torch.Tensor],
    dim: int,
    data_types: List[str],
    feature_table_map: List[int],
    output_dtype: torch.dtype,
) -> torch.Tensor:
    """One dequantised row per id, features in order: ``(N, D)``."""
    num_features = len(feature_table_map)
    stride = (offsets.numel() - 1) // num_features
    parts: List[torch.Tensor] = []
    for f in range(num_features):
        t = feature_table_map[f]
        lo = int(offsets[f * stride])
        hi = int(offsets[(f + 1) * stride])
        parts.append(dequantize_rows(rows[t].index_select(0, indices[lo:hi].long()), dim, DataType(data_types[t])))
    return torch.cat(parts, dim=0).to(output_dtype)
