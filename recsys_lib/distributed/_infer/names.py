"""Small fx-visible helpers of sharded quantized modules (TorchRec's names): input permutation, lengths
flattening and embedding-name annotations. Each is one ``torch.fx`` node where a traced module calls it."""

from typing import List

import torch

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@torch.fx.wrap
def flatten_feature_lengths(features: KeyedJaggedTensor) -> KeyedJaggedTensor:
    """``features`` with 1-D lengths (``flatten_lengths()`` when they are ``(F, B)``)."""
    return features.flatten_lengths() if features.lengths().dim() > 1 else features


@torch.fx.wrap
def input_dist_permute(
    features: KeyedJaggedTensor,
    features_order: List[int],
    features_order_tensor: torch.Tensor,
) -> KeyedJaggedTensor:
    """``features.permute(features_order, features_order_tensor)``: keys reordered as the shardings read them."""
    return features.permute(features_order, features_order_tensor)


@torch.fx.wrap
def annotate_embedding_names(embedding_names: List[str], dummy: List[List[torch.Tensor]]) -> List[str]:
    """``embedding_names`` unchanged; ``dummy`` (the lookups' outputs) only orders the node after them in a graph."""
    return torch.jit.annotate(List[str], embedding_names)


@torch.fx.wrap
def format_embedding_names_per_rank_per_sharding(
    embedding_names_per_rank_per_sharding: List[List[List[str]]],
    dummy: List[List[torch.Tensor]],
) -> List[List[List[str]]]:
    """Every name list through ``annotate_embedding_names`` (same nesting: sharding → rank → names)."""
    out: List[List[List[str]]] = []
    for per_rank in embedding_names_per_rank_per_sharding:
        annotated: List[List[str]] = []
        for names in per_rank:
            annotated.append(annotate_embedding_names(names, dummy))
        out.append(annotated)
    return out
