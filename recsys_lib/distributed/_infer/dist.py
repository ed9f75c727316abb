"""Per-batch data movement of inference sharding on one host (scriptable; one fx node each where called).

Input: one KJT → one KJT per rank holding that rank's features; row-split strategies keep only the ids of the
rank's rows, shifted to local row numbers, and remember where each kept id came from::

    feature f (rows [0, 12) over 2 ranks: [0, 6) | [6, 12)),  B = 2
      bags     | 3 7 |  | 11 |          rank 0: | 3 |  |    |   lengths [1, 0]   positions [0]
                                       rank 1: | 1 |  |  5 |   lengths [1, 1]   positions [1, 2]

Output: pooled partial sums of row-split features are summed over ranks (``EmbeddingsAllToOneReduce``), MEAN
bags divided by their length afterwards (sum-then-divide); sequence rows are put back at their positions.
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.modules._feature_layout import check_ids, check_keys
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def check_input(features: KeyedJaggedTensor, all_features: Dict[str, int], owner: str) -> None:
    """Known keys, each feature present, one batch size for all (``ValueError`` naming the problem)."""
    check_keys(features.keys(), all_features, owner)
    if features.variable_stride_per_key():
        raise ValueError(owner + ": variable-batch (VBE) KeyedJaggedTensors are not supported by quantized lookups")


def split_for_ranks(
    features: KeyedJaggedTensor,
    rank_features: List[List[str]],
    rank_row_lo: List[List[int]],
    rank_row_hi: List[List[int]],
    filter_rows: bool,
    rows_per_feature: Dict[str, int],
    table_of_feature: Dict[str, str],
) -> Tuple[List[KeyedJaggedTensor], List[List[torch.Tensor]]]:
    """Per active rank: a KJT of its features (rows ``[lo, hi)`` only, as local ids, when ``filter_rows``) and,
    when filtering, each feature's kept positions ``(N_kept,)`` within the feature's input values.

    ``features`` holds every feature named (in any key order, one stride; checked by the caller).
    """
    index: Dict[str, int] = {}
    for i, k in enumerate(features.keys()):
        index[k] = i
    values = features.values()
    lengths = features.lengths()
    weights = features.weights_or_none()
    opk = features.offset_per_key()
    stride = features.stride()
    if filter_rows:
        for f, rows in rows_per_feature.items():
            i = index[f]
            check_ids(values[opk[i]: opk[i + 1]], rows, table_of_feature[f])
    kjts: List[KeyedJaggedTensor] = []
    positions: List[List[torch.Tensor]] = []
    for r in range(len(rank_features)):
        vs: List[torch.Tensor] = []
        ls: List[torch.Tensor] = []
        ws: List[torch.Tensor] = []
        pos_r: List[torch.Tensor] = []
        for j, f in enumerate(rank_features[r]):
            i = index[f]
            v = values[opk[i]: opk[i + 1]]
            lens = lengths[i * stride: (i + 1) * stride]
            w: Optional[torch.Tensor] = None
            if weights is not None:
                w = weights[opk[i]: opk[i + 1]]
            if filter_rows:
                lo = rank_row_lo[r][j]
                keep = (v >= lo) & (v < rank_row_hi[r][j])
                kept_before = torch.cat([torch.zeros(1, dtype=torch.long, device=v.device),
                                         torch.cumsum(keep.long(), 0)])
                ends = torch.cumsum(lens.long(), 0)
                lens = (kept_before[ends] - kept_before[ends - lens.long()]).to(lens.dtype)
                pos = torch.nonzero(keep).flatten()
                v = v.index_select(0, pos) - lo
                if w is not None:
                    w = w.index_select(0, pos)
                pos_r.append(pos)
            vs.append(v)
            ls.append(lens)
            if w is not None:
                ws.append(w)
        kjts.append(KeyedJaggedTensor(
            keys=rank_features[r], values=torch.cat(vs), lengths=torch.cat(ls),
            weights=torch.cat(ws) if weights is not None else None, stride=stride,
        ))
        positions.append(pos_r)
    return kjts, positions


def mean_divisor(features: KeyedJaggedTensor, feature_names: List[str], dims: List[int],
                 is_mean: List[bool]) -> torch.Tensor:
    """``(B, sum(dims))``: each MEAN feature's bag lengths (at least 1) repeated over its columns, 1 elsewhere."""
    stride = features.stride()
    index: Dict[str, int] = {}
    for i, k in enumerate(features.keys()):
        index[k] = i
    lens_all = features.lengths()
    parts: List[torch.Tensor] = []
    for j, f in enumerate(feature_names):
        if is_mean[j]:
            i = index[f]
            lens = lens_all[i * stride: (i + 1) * stride].clamp(min=1).to(torch.float32)
            parts.append(lens.unsqueeze(1).expand(stride, dims[j]))
        else:
            parts.append(torch.ones(stride, dims[j], dtype=torch.float32, device=lens_all.device))
    return torch.cat(parts, dim=1)


def gather_sequences(
    features: KeyedJaggedTensor,
    outputs: List[Dict[str, JaggedTensor]],
    names: List[str],
    feature_of_name: List[str],
    sources: List[List[int]],
    positions: List[List[torch.Tensor]],
    position_slot: List[List[int]],
    row_split: bool,
) -> Dict[str, torch.Tensor]:
    """Each embedding name's ``(N_f, D)`` rows from the ranks ``sources[k]`` (indices into ``outputs``) that
    hold it.

    Column split: the sources' rows side by side (column order). Row split: each source's rows put back at its
    ``positions[rank][position_slot[k][s]]`` among the feature's ``N_f`` input ids. Otherwise the one source's.
    """
    counts: Dict[str, int] = {}
    if row_split:
        for key, n in zip(features.keys(), features.length_per_key()):
            counts[key] = n
    out: Dict[str, torch.Tensor] = {}
    for k, name in enumerate(names):
        src = sources[k]
        if row_split:
            first = outputs[src[0]][name].values()
            rows = torch.zeros(counts[feature_of_name[k]], first.size(1), dtype=first.dtype, device=first.device)
            for s, r in enumerate(src):
                rows.index_copy_(0, positions[r][position_slot[k][s]], outputs[r][name].values())
            out[name] = rows
        elif len(src) == 1:
            out[name] = outputs[src[0]][name].values()
        else:
            out[name] = torch.cat([outputs[r][name].values() for r in src], dim=1)
    return out


def sum_row_shards(tensors: List[torch.Tensor], columns: torch.Tensor, bounds: List[int], width: int) -> torch.Tensor:
    """``(B, width)`` float32: tensor ``r``'s column ``j`` added into column ``columns[bounds[r] + j]``, rank order."""
    out = torch.zeros([tensors[0].size(0), width], dtype=torch.float32, device=tensors[0].device)
    for r in range(len(tensors)):
        out.index_add_(1, columns[bounds[r]: bounds[r + 1]].to(out.device), tensors[r].float())
    return out


def jagged_outputs(
    features: KeyedJaggedTensor,
    parts: List[Dict[str, torch.Tensor]],
    names: List[str],
    feature_of_name: List[str],
    need_indices: bool,
) -> Dict[str, JaggedTensor]:
    """``{name: JaggedTensor(rows (N_f, D) from the part holding name, the input's lengths of f,
    weights = ids if need_indices)}``."""
    rows: Dict[str, torch.Tensor] = {}
    for part in parts:
        for name, value in part.items():
            rows[name] = value
    jts = features.to_dict()
    out: Dict[str, JaggedTensor] = {}
    for k, name in enumerate(names):
        jt = jts[feature_of_name[k]]
        out[name] = JaggedTensor(values=rows[name], lengths=jt.lengths(),
                                 weights=jt.values() if need_indices else None)
    return out
