"""Eviction-policy configs for key-value ("virtual") embedding tables.

recsys_lib accepts these on a table config so that TorchRec configs load unchanged, but it has no KV/SSD
kernels: the single-device modules and the CPU sharders ignore them.
"""

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from recsys_lib._public import public_at


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class VirtualTableEvictionPolicy:
    """Base class of the eviction policies of a virtual (KV-backed) table.

    Args:
        eviction_trigger_mode: how eviction is triggered (0 = disabled, 1 = by iteration, 2 = by memory, ...).
        eviction_step_intervals: iterations between two evictions when triggered by iteration.
        eviction_mem_threshold_gb: memory threshold in GB when triggered by memory.
        eviction_ttl_mins: entries idle longer than this are evicted (0 = never).
        training_id_eviction_trigger_count: ids seen before an eviction round, if set.
        training_id_keep_count: ids kept per eviction round, if set.
        enable_eviction_for_feature_score_eviction_policy: per-feature switch, if set.
        meta_header_len: bytes of per-row metadata kept by the KV store.
    """

    eviction_trigger_mode: int = 0
    eviction_step_intervals: Optional[int] = None
    eviction_mem_threshold_gb: Optional[int] = None
    eviction_ttl_mins: int = 0
    training_id_eviction_trigger_count: Optional[int] = None
    training_id_keep_count: Optional[int] = None
    enable_eviction_for_feature_score_eviction_policy: Optional[bool] = None
    meta_header_len: int = 16


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class NoEvictionPolicy(VirtualTableEvictionPolicy):
    """Never evict."""


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class CountBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows whose decayed access count falls below ``eviction_threshold``."""

    eviction_threshold: int = 0
    decay_rate: float = 0.99


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class TimestampBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows not accessed within ``eviction_ttl_mins`` minutes."""


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class CountTimestampMixedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows that are both rarely used (count) and old (timestamp)."""

    eviction_threshold: int = 0
    decay_rate: float = 0.99


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureL2NormBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows whose L2 norm falls below ``eviction_threshold``."""

    eviction_threshold: float = 0.0


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureScoreMapping:
    """Per-feature score used by :class:`FeatureScoreBasedEvictionPolicy`."""

    feature_name: str = ""
    score: float = 0.0


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureScoreBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows whose feature score falls below a per-feature threshold."""

    feature_score_mapping: Dict[str, float] = field(default_factory=dict)
    max_training_id_num_per_rank: int = 0
    target_eviction_percent_per_rank: int = 20
    threshold_calculation_bucket_stride: float = 0.2
    threshold_calculation_bucket_num: Optional[int] = 1000000
    feature_score_default_value: Optional[List[float]] = None
