"""Feature processors, legacy API (``Dict[str, JaggedTensor]`` / KJT in and out).

``PositionWeightedModule`` here takes ``{feature: max_length}`` and processes a dict of jagged tensors;
``PositionWeightedProcessor`` does the same on a ``KeyedJaggedTensor`` (other features get weight 1). Both keep
their parameters in ``position_weights.<feature>`` (initialised to 1). See ``feature_processor_`` for the
current API used by ``FeatureProcessedEmbeddingBagCollection``.
"""

import abc
from typing import Any, Dict, Optional

import torch
from torch import nn

from recsys_lib.modules.feature_processor_ import gather_position_weights, position_weighted_kjt, positions_in_bags
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

# fx wraps a function per defining namespace: register the imported name here too so calls from this file stay
# one node.
torch.fx.wrap("position_weighted_kjt")


def _check_lengths(max_feature_lengths: Dict[str, int], owner: str) -> None:
    if not isinstance(max_feature_lengths, dict) or len(max_feature_lengths) == 0:
        raise ValueError(f"{owner}: max_feature_lengths must be a non-empty dict, got {max_feature_lengths!r}")
    for f, n in max_feature_lengths.items():
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"{owner}: max length of feature {f!r} must be a positive int, got {n!r}")


def _ones_weights(max_feature_lengths: Dict[str, int], device: Optional[torch.device]) -> nn.ParameterDict:
    return nn.ParameterDict({f: nn.Parameter(torch.ones(n, device=device)) for f, n in max_feature_lengths.items()})


def offsets_to_range_traceble(offsets: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Position of every value in its bag, ``(numel(values),)``: offsets ``[0, 2, 2, 5]`` → ``[0, 1, 0, 1, 2]``."""
    return positions_in_bags(offsets.long(), torch.numel(values))


def position_weighted_module_update_features(
    features: Dict[str, JaggedTensor], weighted_features: Dict[str, JaggedTensor]
) -> Dict[str, JaggedTensor]:
    """``features`` with the entries of ``weighted_features`` replacing theirs."""
    features.update(weighted_features)
    return features


class BaseFeatureProcessor(nn.Module):
    """Processes ``{feature: JaggedTensor}``."""

    @abc.abstractmethod
    def forward(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        pass


class PositionWeightedModule(BaseFeatureProcessor):
    """Per-position weights for the features in ``max_feature_lengths`` (parameters ``position_weights.<f>``)."""

    def __init__(self, max_feature_lengths: Dict[str, int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        _check_lengths(max_feature_lengths, "PositionWeightedModule")
        self.max_feature_lengths: Dict[str, int] = dict(max_feature_lengths)
        self.position_weights: nn.ParameterDict = _ones_weights(max_feature_lengths, device)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for p in self.position_weights.values():
                p.fill_(1.0)

    def forward(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        """Returns a dict with the position-weighted features replaced; others passed through."""
        weighted: Dict[str, JaggedTensor] = {}
        for key, pos_weight in self.position_weights.items():
            if key not in features:
                continue
            jt = features[key]
            positions = positions_in_bags(jt.offsets(), jt.values().numel())
            weighted[key] = JaggedTensor(
                values=jt.values(), lengths=jt.lengths(), offsets=jt.offsets(),
                weights=gather_position_weights(pos_weight, positions, "feature '" + key + "'"),
            )
        return position_weighted_module_update_features(dict(features), weighted)


class BaseGroupedFeatureProcessor(nn.Module):
    """Processes a whole ``KeyedJaggedTensor``."""

    @abc.abstractmethod
    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        pass


class PositionWeightedProcessor(BaseGroupedFeatureProcessor):
    """Per-position weights on a KJT; features without an entry in ``max_feature_lengths`` get weight 1."""

    def __init__(self, max_feature_lengths: Dict[str, int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        _check_lengths(max_feature_lengths, "PositionWeightedProcessor")
        self.max_feature_lengths: Dict[str, int] = dict(max_feature_lengths)
        self.position_weights: nn.ParameterDict = _ones_weights(max_feature_lengths, device)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for p in self.position_weights.values():
                p.fill_(1.0)

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """``features`` with per-position weights (weight 1 for features without an entry); one fx node."""
        weights: Dict[str, torch.Tensor] = {}
        for key, p in self.position_weights.items():
            weights[key] = p
        return position_weighted_kjt(features, weights)

    def state_dict(
        self,
        destination: Optional[Dict[str, Any]] = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> Dict[str, Any]:
        """``{prefix + "position_weights.<feature>": weight}`` (TorchRec's signature: positional arguments)."""
        return super().state_dict(destination=destination, prefix=prefix, keep_vars=keep_vars)
