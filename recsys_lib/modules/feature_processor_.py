"""Feature processors (TorchRec's current FP API): per-position weights for ``FeatureProcessedEmbeddingBagCollection``.

A position-weighted feature gives the ``i``-th id of every bag the learnable weight ``w[i]``::

    lengths [2, 0, 3]   values [a, b, c, d, e]
    positions            [0, 1, 0, 1, 2]
    weights              [w0, w1, w0, w1, w2]   (w: (max_feature_length,), initialised to 1)

The weighted EBC then pools ``sum_i w[i] * E[id_i]``. Bags longer than ``max_feature_length`` are rejected.
"""

import abc
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn
from torch.nn.modules.module import _IncompatibleKeys

from recsys_lib.pt2.checks import is_pt2_compiling, pt2_guard_or_false
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


@torch.fx.wrap
def positions_in_bags(offsets: torch.Tensor, numel: int) -> torch.Tensor:
    """Position of every value inside its bag: offsets ``[0, 2, 2, 5]`` → ``[0, 1, 0, 1, 2]``."""
    offsets = offsets.long()
    lengths = offsets[1:] - offsets[:-1]
    starts = torch.repeat_interleave(offsets[:-1], lengths, output_size=numel)
    return torch.arange(numel, device=offsets.device) - starts


@torch.fx.wrap
def gather_position_weights(position_weight: torch.Tensor, positions: torch.Tensor, what: str) -> torch.Tensor:
    """``position_weight[positions]`` with a clear error for a bag longer than the weight vector."""
    # the range check reads data: skipped while a PT2 tracer runs (the traced program trusts its inputs)
    if not is_pt2_compiling() and positions.numel() > 0:
        longest = int(positions.max()) + 1
        if longest > position_weight.numel():
            raise ValueError(
                what + ": a bag holds " + str(longest) + " ids but max_feature_length is "
                + str(position_weight.numel())
            )
    return position_weight.index_select(0, positions)


@torch.fx.wrap
def position_weighted_kjt(features: KeyedJaggedTensor, position_weights: Dict[str, torch.Tensor]) -> KeyedJaggedTensor:
    """``features`` with weights ``position_weights[key][position in bag]`` (weight 1 for other keys).

    One ``torch.fx`` node (the per-key split depends on the batch), so processors built on it trace.
    """
    lpk: List[int] = features.length_per_key()  # first: may re-base values (offsets not starting at 0)
    values = features.values()
    total = features.offset_per_key()[-1]
    # values past the last bag (accepted, as in TorchRec) get no weight: drop them (a traced size is trusted)
    if pt2_guard_or_false(values.size(0) != total):
        values = values[:total]
    positions = positions_in_bags(features.offsets(), values.numel())
    parts: List[torch.Tensor] = []
    for key, pos in zip(features.keys(), positions.split(lpk)):
        if key in position_weights:
            parts.append(gather_position_weights(position_weights[key], pos, "feature '" + key + "'"))
        else:
            parts.append(torch.ones(pos.numel(), device=values.device))
    weights = torch.cat(parts) if len(parts) > 0 else torch.empty(0, device=values.device)
    vbe = features.variable_stride_per_key()
    return KeyedJaggedTensor(
        keys=features.keys(),
        values=values,
        weights=weights,
        lengths=features.lengths(),
        offsets=features.offsets(),
        stride_per_key_per_rank=features.stride_per_key_per_rank() if vbe else None,
        stride=None if vbe else features.stride(),
        length_per_key=lpk,
        offset_per_key=features.offset_per_key(),
        inverse_indices=features.inverse_indices_or_none(),
    )


def get_weights_list(
    cat_seq: torch.Tensor,
    features: KeyedJaggedTensor,
    position_weights: Dict[str, nn.Parameter],
) -> Optional[torch.Tensor]:
    """Per-value weights from per-value positions ``cat_seq`` (sum(L),): ``position_weights[key][pos]``, 1 elsewhere.

    Returns ``features.weights_or_none()`` for a KJT without keys.
    """
    parts: List[torch.Tensor] = []
    for key, seq in zip(features.keys(), torch.split(cat_seq, features.length_per_key())):
        if key in position_weights:
            parts.append(torch.gather(position_weights[key], dim=0, index=seq))
        else:
            parts.append(torch.ones(seq.shape[0], device=features.values().device))
    return torch.cat(parts) if len(parts) > 0 else features.weights_or_none()


@torch.fx.wrap
def get_stride_per_key_per_rank(kjt: KeyedJaggedTensor) -> Optional[List[List[int]]]:
    """``kjt.stride_per_key_per_rank()`` for a variable-batch KJT, else ``None``."""
    if not kjt.variable_stride_per_key():
        return None
    return kjt.stride_per_key_per_rank()


class FeatureProcessor(nn.Module):
    """Processes one feature's ``JaggedTensor`` (typically by setting its weights)."""

    @abc.abstractmethod
    def forward(self, features: JaggedTensor) -> JaggedTensor:
        pass


class PositionWeightedModule(FeatureProcessor):
    """Per-position weights for one feature.

    Args:
        max_feature_length: longest bag allowed; the parameter ``position_weight`` has this many entries.
        device: where the parameter lives.
    """

    def __init__(self, max_feature_length: int, device: Optional[torch.device] = None) -> None:
        super().__init__()
        if isinstance(max_feature_length, bool) or not isinstance(max_feature_length, int) or max_feature_length <= 0:
            raise ValueError(f"PositionWeightedModule: max_feature_length must be a positive int, "
                             f"got {max_feature_length!r}")
        self.position_weight = nn.Parameter(torch.empty(max_feature_length, device=device))
        self._pre_processed: bool = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """All position weights back to 1."""
        if self.position_weight.device.type != "meta":
            with torch.no_grad():
                self.position_weight.fill_(1.0)

    def pre_process_input(self, features: JaggedTensor) -> None:
        """Write each id's position in its bag into ``features.weights()`` (in place); later ``forward`` calls then
        read the positions from the weights instead of recomputing them (an input-pipeline optimisation)."""
        self._pre_processed = True
        positions = positions_in_bags(features.offsets(), features.values().numel())
        features.weights().copy_(positions.to(torch.float32))

    def forward(self, features: JaggedTensor) -> JaggedTensor:
        """Returns ``features`` with weights ``position_weight[position of each id in its bag]``."""
        values = features.values()
        offsets = features.offsets()
        if self._pre_processed:
            positions = features.weights().to(torch.int64)
        else:
            positions = positions_in_bags(offsets, values.numel())
        weights = gather_position_weights(self.position_weight, positions, "PositionWeightedModule")
        return JaggedTensor(values=values, lengths=features.lengths(), offsets=offsets, weights=weights)


class FeatureProcessorsCollection(nn.Module):
    """Processes a whole ``KeyedJaggedTensor`` at once."""

    @abc.abstractmethod
    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        pass


class PositionWeightedModuleCollection(FeatureProcessorsCollection):
    """Per-position weights for several features, applied with one gather over the whole KJT.

    Args:
        max_feature_lengths: ``{feature: longest bag}``; parameters ``position_weights.<feature>``.
        device: where the parameters live.

    Features of the input without an entry here get weight 1.
    """

    def __init__(self, max_feature_lengths: Dict[str, int], device: Optional[torch.device] = None) -> None:
        super().__init__()
        if not isinstance(max_feature_lengths, dict) or len(max_feature_lengths) == 0:
            raise ValueError("PositionWeightedModuleCollection: max_feature_lengths must be a non-empty dict, got "
                             f"{max_feature_lengths!r}")
        for f, n in max_feature_lengths.items():
            if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
                raise ValueError(f"PositionWeightedModuleCollection: max length of feature {f!r} must be a positive "
                                 f"int, got {n!r}")
        self.max_feature_lengths: Dict[str, int] = dict(max_feature_lengths)
        self.position_weights = nn.ParameterDict(
            {f: nn.Parameter(torch.empty(n, device=device)) for f, n in max_feature_lengths.items()}
        )
        # TorchRec exposes the same parameters as a plain dict (used by sharders).
        self.position_weights_dict: Dict[str, nn.Parameter] = {f: p for f, p in self.position_weights.items()}
        self._pre_processed: bool = False
        self.reset_parameters()

    def _sync_dict(self) -> None:
        for f, p in self.position_weights.items():
            self.position_weights_dict[f] = p

    def _apply(self, *args: Any, **kwargs: Any) -> nn.Module:
        # .to()/.cuda()/... replace the parameters: keep the plain dict pointing at the live ones
        super()._apply(*args, **kwargs)
        self._sync_dict()
        return self

    def load_state_dict(
        self, state_dict: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False
    ) -> _IncompatibleKeys:
        result = super().load_state_dict(state_dict, strict, assign)
        self._sync_dict()  # assign=True swaps the parameter objects
        return result

    def copy(self, device: torch.device) -> nn.Module:
        """Move the position weights to ``device`` in place (returns ``self``, as TorchRec's CopyMixIn)."""
        self.position_weights = self.position_weights.to(device=device)
        self._sync_dict()
        return self

    def pre_process_input(self, features: KeyedJaggedTensor) -> None:
        """Write each id's position in its bag into ``features.weights()`` in place (see ``PositionWeightedModule``)."""
        self._pre_processed = True
        positions = positions_in_bags(features.offsets(), features.values().numel())
        features.weights().copy_(positions.to(torch.float32))

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for p in self.position_weights.values():
                if p.device.type != "meta":
                    p.fill_(1.0)

    def forward(self, features: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """Returns ``features`` with weights set from each feature's position weights (one fx node)."""
        return position_weighted_kjt(features, self.position_weights_dict)
