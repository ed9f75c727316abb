"""The managed-collision module interface and the small helpers the collection uses.

Public path: ``recsys_lib.modules.mc_modules``. A managed-collision (MC) module maps raw ids (any int64) to rows
``[0, output_size())`` of one table: ``forward = preprocess -> profile (training only: record, maybe evict) ->
remap``. Its inputs and outputs are ``{table: JaggedTensor}`` dicts; ``evict()`` returns the rows whose owner
changed since the last call, so the embedding module can re-initialise them.
"""

import abc
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from recsys_lib._public import public_at

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor
from recsys_lib._public import public_at

_MAX_SEGMENTS: int = 1025  # output segment boundaries kept in a fixed-size buffer: up to 1024 shards


@torch.fx.wrap
def apply_mc_method_to_jt_dict(
    mc_module: nn.Module,
    method: str,
    features_dict: Dict[str, JaggedTensor],
) -> Dict[str, JaggedTensor]:
    """Call ``mc_module.<method>(features_dict)`` (``"preprocess"``, ``"profile"``, ``"remap"``, ...).

    Args:
        mc_module: a managed-collision module.
        method: name of one of its ``Dict[str, JaggedTensor] -> Dict[str, JaggedTensor]`` methods.
        features_dict: ``{table: JaggedTensor}``.

    Returns:
        The method's result, same keys in the same order.
    """
    return getattr(mc_module, method)(features_dict)


@torch.fx.wrap
def _update(base: Optional[Dict[str, JaggedTensor]], delta: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
    merged: Dict[str, JaggedTensor] = {}
    if base is not None:
        merged.update(base)
    merged.update(delta)
    return merged


@torch.fx.wrap
def _cat_jagged_values(jd: Dict[str, JaggedTensor]) -> torch.Tensor:
    return torch.cat([jt.values() for jt in jd.values()])


@torch.fx.wrap
def _cat_jagged_lengths(jd: Dict[str, JaggedTensor]) -> torch.Tensor:
    return torch.cat([jt.lengths() for jt in jd.values()])


def _feature_order(input_names: List[str], wanted: List[str]) -> List[int]:
    missing = [f for f in wanted if f not in input_names]
    if missing:
        raise ValueError(f"ManagedCollisionCollection: input KJT lacks feature(s) {missing}; it has {input_names}")
    order = [input_names.index(f) for f in wanted]
    return [] if order == list(range(len(input_names))) else order  # [] = already in order, no permute


@torch.fx.wrap
def _mcc_lazy_init(
    features: KeyedJaggedTensor,
    feature_names: List[str],
    features_order: List[int],
    created_feature_order: bool,
) -> Tuple[KeyedJaggedTensor, bool, List[int]]:
    """Permute ``features`` into the collection's feature order, computing that order on the first call.

    Returns:
        ``(permuted features, True, order)``; ``order`` is empty when no permute is needed.
    """
    if not created_feature_order:
        features_order = _feature_order(features.keys(), feature_names)
        created_feature_order = True
    if len(features_order) > 0:
        features = features.permute(features_order)
    return features, created_feature_order, features_order


@torch.fx.wrap
def _mcc_lazy_init_inplace(
    features: KeyedJaggedTensor,
    feature_names: List[str],
    features_order: List[int],
    created_feature_order: List[bool],
) -> KeyedJaggedTensor:
    """As ``_mcc_lazy_init``, caching the order in the given lists (``created_feature_order`` holds one bool)."""
    if len(created_feature_order) == 0 or not created_feature_order[0]:
        features_order.clear()
        features_order.extend(_feature_order(features.keys(), feature_names))
        if len(created_feature_order) > 0:
            created_feature_order[0] = True
        else:
            created_feature_order.append(True)
    if len(features_order) > 0:
        features = features.permute(features_order)
    return features


@torch.fx.wrap
def _get_length_per_key(kjt: KeyedJaggedTensor) -> torch.Tensor:
    return torch.tensor(kjt.length_per_key())


@public_at("recsys_lib.modules.mc_modules")
class ManagedCollisionModule(nn.Module):
    """Abstract base of the managed-collision modules: raw ids in, table rows ``[0, output_size())`` out.

    Args:
        device: device of the module's buffers.
        output_segments: boundaries of the output row ranges this module covers (``[start, end]`` unsharded;
            one range per bucket when resharded); kept in ``_output_segments_tensor`` (1025 entries, ``-1`` pad).
        skip_state_validation: register no segment / iteration buffers and no load-time validation.
        read_only_suffix: suffix of read-only lookup feature names.
        enable_per_feature_lookups: look up per feature rather than per table (hash ZCH).

    Example::

        mc = MCHManagedCollisionModule(zch_size=10, device=torch.device("cpu"),
                                       eviction_policy=LFU_EvictionPolicy(), eviction_interval=1)
        out = mc({"t": JaggedTensor(values=torch.tensor([10**12, 5]), lengths=torch.tensor([2]))})
    """

    def __init__(
        self,
        device: torch.device,
        output_segments: List[int],
        skip_state_validation: bool = False,
        read_only_suffix: str = "_readonly",
        enable_per_feature_lookups: bool = False,
    ) -> None:
        super().__init__()
        self._device = device
        self._enable_per_feature_lookups = enable_per_feature_lookups
        self._read_only_suffix = read_only_suffix
        if skip_state_validation:
            return
        if len(output_segments) > _MAX_SEGMENTS:
            raise ValueError(
                f"{type(self).__name__}: at most {_MAX_SEGMENTS - 1} output segments (shards), "
                f"got {len(output_segments) - 1}"
            )
        padded = list(output_segments) + [-1] * (_MAX_SEGMENTS - len(output_segments))
        self.register_buffer("_output_segments_tensor", torch.tensor(padded, dtype=torch.int64, device=device))
        self.register_buffer("_current_iter_tensor", torch.tensor([0], dtype=torch.int64, device=device))
        self.register_load_state_dict_post_hook(_validate_after_load)

    @property
    def readable_suffix(self) -> str:
        return self._read_only_suffix

    @property
    def device(self) -> torch.device:
        return self._device

    @abc.abstractmethod
    def preprocess(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        """Transform raw ids before profiling (e.g. hash them into the input range)."""

    @abc.abstractmethod
    def evict(self) -> Optional[torch.Tensor]:
        """Rows ``(E,)`` whose owner changed since the last call, or ``None``: the caller re-initialises them."""

    @abc.abstractmethod
    def remap(
        self,
        features: Dict[str, JaggedTensor],
        mutate_miss_lengths: bool = True,
        write_weights: Optional[torch.Tensor] = None,
    ) -> Dict[str, JaggedTensor]:
        """Map ids to rows; same lengths."""

    @abc.abstractmethod
    def profile(self, features: Dict[str, JaggedTensor]) -> Dict[str, JaggedTensor]:
        """Record the batch (training only) and run an eviction round when one is due."""

    @abc.abstractmethod
    def forward(
        self,
        features: Dict[str, JaggedTensor],
        mutate_miss_lengths: bool = True,
    ) -> Dict[str, JaggedTensor]:
        """``remap(profile(preprocess(features)))``."""

    @abc.abstractmethod
    def output_size(self) -> int:
        """Rows of the output range (must equal the table's ``num_embeddings``)."""

    @abc.abstractmethod
    def input_size(self) -> int:
        """Size of the raw id range, for sharding."""

    @abc.abstractmethod
    def buckets(self) -> int:
        """Number of uniform buckets (resharding granularity)."""

    @abc.abstractmethod
    def validate_state(self) -> None:
        """Check (and normalise) the state after ``load_state_dict``."""

    @abc.abstractmethod
    def open_slots(self) -> torch.Tensor:
        """``(1,)`` number of unused rows."""

    @abc.abstractmethod
    def rebuild_with_output_id_range(
        self,
        output_id_range: Tuple[int, int],
        output_segments: List[int],
        device: Optional[torch.device] = None,
    ) -> "ManagedCollisionModule":
        """A module of the same kind covering rows ``[start, end)``: the local part of a row-wise shard."""


def _validate_after_load(module: nn.Module, incompatible_keys: object) -> None:
    module.validate_state()  # type: ignore[operator]
