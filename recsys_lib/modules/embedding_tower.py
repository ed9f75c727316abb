"""Embedding towers: an embedding module followed by an interaction module, grouped for tower sharding.

A tower reads only its own features; ``EmbeddingTowerCollection`` routes each tower its features (from the
unweighted or weighted KJT, depending on the tower's embedding module) and concatenates their outputs.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn

from recsys_lib.modules.embedding_modules import EmbeddingBagCollectionInterface, EmbeddingCollectionInterface
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def tower_input_params(module: nn.Module) -> Tuple[bool, bool]:
    """``(reads the unweighted KJT, reads the weighted KJT)`` for a tower's embedding module."""
    if isinstance(module, EmbeddingBagCollectionInterface):
        return (not module.is_weighted(), module.is_weighted())
    if isinstance(module, EmbeddingCollectionInterface):
        return (True, False)
    weighted = bool(getattr(module, "is_weighted", lambda: False)())
    return (not weighted, weighted)


def _features_of(module: nn.Module) -> List[str]:
    if hasattr(module, "embedding_bag_configs"):
        configs = module.embedding_bag_configs()
    elif hasattr(module, "embedding_configs"):
        configs = module.embedding_configs()
    else:
        raise TypeError(f"tower embedding module {type(module).__name__} has no table configs")
    out: List[str] = []
    for t in configs:
        for f in t.feature_names:
            if f not in out:
                out.append(f)
    return out


def _select(kjt: KeyedJaggedTensor, keys: List[str]) -> KeyedJaggedTensor:
    index = {k: i for i, k in enumerate(kjt.keys())}
    missing = [k for k in keys if k not in index]
    if missing:
        raise ValueError(f"EmbeddingTowerCollection: features {missing} missing from the input keys {kjt.keys()}")
    perm = [index[k] for k in keys]
    return kjt if perm == list(range(len(kjt.keys()))) else kjt.permute(perm)


class EmbeddingTower(nn.Module):
    """``interaction(embedding(features))``.

    Args:
        embedding_module: e.g. an ``EmbeddingBagCollection``.
        interaction_module: applied to the embedding module's output.
        device: unused on a single device (kept for TorchRec compatibility).
    """

    def __init__(self, embedding_module: nn.Module, interaction_module: nn.Module,
                 device: Optional[torch.device] = None) -> None:
        super().__init__()
        self.embedding = embedding_module
        self.interaction = interaction_module

    def forward(self, *args, **kwargs) -> torch.Tensor:  # type: ignore[no-untyped-def]
        return self.interaction(self.embedding(*args, **kwargs))


class EmbeddingTowerCollection(nn.Module):
    """Several towers; ``forward(features, weighted_features)`` → ``cat(tower outputs, dim=1)``."""

    def __init__(self, towers: List[EmbeddingTower], device: Optional[torch.device] = None) -> None:
        super().__init__()
        if len(towers) == 0:
            raise ValueError("EmbeddingTowerCollection needs at least one tower")
        self.towers = nn.ModuleList(towers)
        self._input_params = [tower_input_params(t.embedding) for t in towers]
        self._features = [_features_of(t.embedding) for t in towers]

    def forward(
        self,
        features: Optional[KeyedJaggedTensor] = None,
        weighted_features: Optional[KeyedJaggedTensor] = None,
    ) -> torch.Tensor:
        outs: List[torch.Tensor] = []
        for tower, (unweighted, _weighted), keys in zip(self.towers, self._input_params, self._features):
            source = features if unweighted else weighted_features
            if source is None:
                raise ValueError(f"EmbeddingTowerCollection: a tower needs the {'un' if unweighted else ''}weighted "
                                 "features, which were not given")
            outs.append(tower(_select(source, keys)))
        return torch.cat(outs, dim=1)
