"""Eviction policies of the hash ZCH module (``torchrec.modules.hash_mc_evictions``).

A hash-ZCH slot carries one int32 of metadata. The eviction module turns a batch into per-id metadata plus a
threshold; the probe marks a slot evictable when ``metadata < threshold``:

============================  =======================================  ============  ======================
policy                        id metadata written to its slot          threshold     evicts
============================  =======================================  ============  ======================
``SINGLE_TTL_EVICTION``       ``now_hour + single_ttl`` (expiry hour)  ``now_hour``  first expired slot
``PER_FEATURE_TTL_EVICTION``  ``now_hour + per_feature_ttl[feature]``  ``now_hour``  first expired slot
``LRU_EVICTION``              ``now_hour + single_ttl``                ``now_hour``  most expired in window
============================  =======================================  ============  ======================
"""

import time
from dataclasses import dataclass
from enum import Enum, unique
from typing import List, Optional, Tuple

import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor


@unique
class HashZchEvictionPolicyName(Enum):
    SINGLE_TTL_EVICTION = "SINGLE_TTL_EVICTION"
    PER_FEATURE_TTL_EVICTION = "PER_FEATURE_TTL_EVICTION"
    LRU_EVICTION = "LRU_EVICTION"


@dataclass
class HashZchEvictionConfig:
    """Parameters of the TTL / LRU policies.

    Args:
        features: feature names of the table, in input order.
        single_ttl: time to live in hours (single-TTL and LRU).
        per_feature_ttl: one TTL in hours per feature (per-feature TTL).
    """

    features: List[str]
    single_ttl: Optional[int] = None
    per_feature_ttl: Optional[List[int]] = None


@torch.fx.wrap
def get_kernel_from_policy(policy_name: Optional[HashZchEvictionPolicyName]) -> int:
    """Probe kernel of a policy: 1 for LRU (most expired in the window), else 0 (first expired slot)."""
    return 1 if policy_name == HashZchEvictionPolicyName.LRU_EVICTION else 0


def _now_hour() -> int:
    return int(time.time() / 3600)


class HashZchEvictionScorer:
    """No-op scorer: no metadata, threshold ``-1`` (nothing expires)."""

    def __init__(self, config: HashZchEvictionConfig) -> None:
        self._config: HashZchEvictionConfig = config

    def gen_score(self, feature: JaggedTensor, device: torch.device) -> torch.Tensor:
        return torch.empty(0, device=device)

    def gen_threshold(self) -> int:
        return -1


class HashZchSingleTtlScorer(HashZchEvictionScorer):
    """Every id expires ``single_ttl`` hours from now."""

    def gen_score(self, feature: JaggedTensor, device: torch.device) -> torch.Tensor:
        if self._config.single_ttl is None:
            raise ValueError("HashZchSingleTtlScorer: HashZchEvictionConfig.single_ttl is required")
        return torch.full_like(feature.values(), self._config.single_ttl + _now_hour(), dtype=torch.int32,
                               device=device)

    def gen_threshold(self) -> int:
        return _now_hour()


class HashZchPerFeatureTtlScorer(HashZchEvictionScorer):
    """Ids of feature ``f`` expire ``per_feature_ttl[f]`` hours from now.

    The feature boundaries come from ``feature.weights()`` (ids per feature, ``(F,)``) when given, else from
    ``feature.lengths()`` split evenly into ``len(features)`` keys (``(F*B,)``, key-major).
    """

    def __init__(self, config: HashZchEvictionConfig) -> None:
        super().__init__(config)
        ttl = config.per_feature_ttl
        if ttl is None or len(ttl) != len(config.features):
            raise ValueError(
                "HashZchPerFeatureTtlScorer: per_feature_ttl needs one TTL per feature: "
                f"features {config.features}, per_feature_ttl {ttl}"
            )
        self._per_feature_ttl = torch.tensor(ttl, dtype=torch.int32)

    def gen_score(self, feature: JaggedTensor, device: torch.device) -> torch.Tensor:
        num_features = self._per_feature_ttl.numel()
        split = feature.weights_or_none()
        if split is None or split.numel() != num_features:
            split = feature.lengths().view(num_features, -1).sum(1)
        scores = self._per_feature_ttl.repeat_interleave(split.to(torch.int64)) + _now_hour()
        return scores.to(device=device)

    def gen_threshold(self) -> int:
        return _now_hour()


@torch.fx.wrap
def get_eviction_scorer(
    policy_name: HashZchEvictionPolicyName, config: HashZchEvictionConfig
) -> HashZchEvictionScorer:
    if policy_name == HashZchEvictionPolicyName.PER_FEATURE_TTL_EVICTION:
        return HashZchPerFeatureTtlScorer(config)
    if policy_name in (HashZchEvictionPolicyName.SINGLE_TTL_EVICTION, HashZchEvictionPolicyName.LRU_EVICTION):
        return HashZchSingleTtlScorer(config)
    return HashZchEvictionScorer(config)


class HashZchThresholdEvictionModule(torch.nn.Module):
    """Per-id metadata and the threshold of a TTL / LRU policy.

    Args:
        policy_name: the policy.
        config: its parameters.
    """

    _eviction_scorer: HashZchEvictionScorer

    def __init__(self, policy_name: HashZchEvictionPolicyName, config: HashZchEvictionConfig) -> None:
        super().__init__()
        self._policy_name: HashZchEvictionPolicyName = policy_name
        self._config: HashZchEvictionConfig = config
        self._eviction_scorer = get_eviction_scorer(policy_name=policy_name, config=config)

    def forward(self, feature: JaggedTensor, device: torch.device) -> Tuple[torch.Tensor, int]:
        """Returns ``(metadata (N,) int32, threshold)``."""
        return self._eviction_scorer.gen_score(feature, device), self._eviction_scorer.gen_threshold()


class HashZchOptEvictionModule(torch.nn.Module):
    """Policies without per-id metadata: ``(None, -1)``."""

    def __init__(self, policy_name: HashZchEvictionPolicyName) -> None:
        super().__init__()
        self._policy_name: HashZchEvictionPolicyName = policy_name

    def forward(self, feature: JaggedTensor, device: torch.device) -> Tuple[None, int]:
        return None, -1


@torch.fx.wrap
def get_eviction_module(
    policy_name: HashZchEvictionPolicyName, config: Optional[HashZchEvictionConfig]
) -> torch.nn.Module:
    if policy_name in (
        HashZchEvictionPolicyName.SINGLE_TTL_EVICTION,
        HashZchEvictionPolicyName.PER_FEATURE_TTL_EVICTION,
        HashZchEvictionPolicyName.LRU_EVICTION,
    ):
        if config is None:
            raise ValueError(f"HashZch eviction policy {policy_name.value} needs a HashZchEvictionConfig")
        return HashZchThresholdEvictionModule(policy_name, config)
    return HashZchOptEvictionModule(policy_name)


class HashZchEvictionModule(torch.nn.Module):
    """The eviction module of one hash-ZCH table.

    Args:
        policy_name: the policy.
        device: device of the metadata it returns.
        config: required by the TTL / LRU policies.
    """

    def __init__(
        self,
        policy_name: HashZchEvictionPolicyName,
        device: torch.device,
        config: Optional[HashZchEvictionConfig],
    ) -> None:
        super().__init__()
        self._policy_name: HashZchEvictionPolicyName = policy_name
        self._device: torch.device = device
        self._eviction_module: torch.nn.Module = get_eviction_module(policy_name, config)

    def forward(self, feature: JaggedTensor) -> Tuple[Optional[torch.Tensor], int]:
        """Returns ``(metadata (N,) int32 or None, threshold)``."""
        return self._eviction_module(feature, self._device)
