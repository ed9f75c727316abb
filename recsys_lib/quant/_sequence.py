"""Splitting a sequence kernel's ``(N, D)`` output into one ``JaggedTensor`` per feature."""

from typing import Dict, List

import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

def sequence_outputs(
    features: KeyedJaggedTensor,
    embeddings: torch.Tensor,
    feature_order: List[str],
    embedding_names: List[str],
    need_indices: bool,
) -> Dict[str, JaggedTensor]:
    """``embeddings`` holds the rows of ``feature_order``'s features back to back (key-major, as a KJT).

    Returns ``{embedding_names[i]: JaggedTensor(values (N_i, D), lengths of feature i, weights = ids?)}``.
    """
    jts = features.to_dict()
    out: Dict[str, JaggedTensor] = {}
    start = 0
    for i, f in enumerate(feature_order):
        jt = jts[f]
        n = jt.values().numel()
        out[embedding_names[i]] = JaggedTensor(
            values=embeddings[start: start + n],
            lengths=jt.lengths(),
            weights=jt.values() if need_indices else None,
        )
        start += n
    return out
