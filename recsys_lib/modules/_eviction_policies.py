"""Eviction-policy configs for key-value ("virtual") embedding tables (TorchRec 1.8.0's fields and defaults).

recsys_lib accepts these on a table config so that TorchRec configs load unchanged; it has no KV/SSD kernels, so
the single-device modules and the CPU sharders do not act on them. ``inference_*`` fields left ``None`` take the
training value in ``__post_init__``, as in TorchRec.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional

from recsys_lib.types import DataType

from recsys_lib._public import public_at


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class VirtualTableEvictionPolicy:
    """Base class: the per-row metadata header of a virtual table.

    Args:
        meta_header_len: metadata header length in elements of the table's data type.
        embedding_dim: the table's dim (set by ``init_metaheader_config``).
        initialized: whether ``init_metaheader_config`` ran.
    """

    meta_header_len: int = 0
    embedding_dim: int = 0
    initialized: bool = False

    def init_metaheader_config(self, data_type: DataType, embedding_dim: int) -> None:
        """Size the 16-byte header (8 key + 4 timestamp + 4 used/count bytes) in elements of ``data_type``; once."""
        if self.initialized:
            return
        from recsys_lib.modules.embedding_configs import data_type_to_dtype  # the configs module imports this one

        self.meta_header_len = 16 // data_type_to_dtype(data_type).itemsize
        self.embedding_dim = embedding_dim
        self.initialized = True

    def get_meta_header_len(self) -> int:
        return self.meta_header_len

    def get_embedding_dim(self) -> int:
        return self.embedding_dim


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class NoEvictionPolicy(VirtualTableEvictionPolicy):
    """Never evict."""


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class CountBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows whose decayed access count falls below ``eviction_threshold`` (0: never)."""

    training_id_eviction_trigger_count: int = 0
    eviction_threshold: int = 15
    decay_rate: float = 0.99
    inference_eviction_threshold: Optional[int] = None

    def __post_init__(self) -> None:
        if self.inference_eviction_threshold is None:
            self.inference_eviction_threshold = self.eviction_threshold


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class TimestampBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows not accessed within ``eviction_ttl_mins`` minutes (0: never)."""

    training_id_eviction_trigger_count: int = 0
    eviction_ttl_mins: int = 24 * 60
    inference_eviction_ttl_mins: Optional[int] = None
    max_inference_id_num_per_rank: int = 0

    def __post_init__(self) -> None:
        if self.inference_eviction_ttl_mins is None:
            self.inference_eviction_ttl_mins = self.eviction_ttl_mins


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class CountTimestampMixedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows that are rarely used (count below threshold) or idle past the TTL."""

    training_id_eviction_trigger_count: int = 0
    eviction_threshold: int = 15
    decay_rate: float = 0.99
    eviction_ttl_mins: int = 24 * 60
    inference_eviction_threshold: Optional[int] = None
    inference_eviction_ttl_mins: Optional[int] = None

    def __post_init__(self) -> None:
        if self.inference_eviction_ttl_mins is None:
            self.inference_eviction_ttl_mins = self.eviction_ttl_mins
        if self.inference_eviction_threshold is None:
            self.inference_eviction_threshold = self.eviction_threshold


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureL2NormBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows whose L2 norm falls below ``eviction_threshold`` (0.0: never)."""

    training_id_eviction_trigger_count: int = 0
    eviction_threshold: float = 0.0
    inference_eviction_threshold: Optional[float] = None

    def __post_init__(self) -> None:
        if self.inference_eviction_threshold is None:
            self.inference_eviction_threshold = self.eviction_threshold


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureScoreMapping:
    """Per-feature scores of a virtual table, and whether eviction is on."""

    feature_score_mapping: Dict[str, float] = field(default_factory=dict)
    eviction_enabled: bool = False


@dataclass
@public_at("recsys_lib.modules.embedding_configs")
class FeatureScoreBasedEvictionPolicy(VirtualTableEvictionPolicy):
    """Evict rows by a decayed per-feature score (with TTL and per-rank id caps)."""

    decay_rate: float = 0.99
    training_id_eviction_trigger_count: int = 0
    training_id_keep_count: int = 0
    eviction_ttl_mins: int = 0
    max_inference_id_num_per_rank: int = 0
    inference_eviction_feature_score_threshold: Optional[float] = None
    inference_eviction_ttl_mins: Optional[int] = None
    feature_score_mapping: Optional[Dict[str, float]] = None
    feature_score_default_value: Optional[float] = None
    enable_auto_feature_score_collection: bool = False
    enable_eviction: bool = True

    def __post_init__(self) -> None:
        if self.inference_eviction_feature_score_threshold is None:
            self.inference_eviction_feature_score_threshold = 0
        if self.inference_eviction_ttl_mins is None:
            self.inference_eviction_ttl_mins = self.eviction_ttl_mins
        if self.max_inference_id_num_per_rank == 0:
            self.max_inference_id_num_per_rank = self.training_id_keep_count
        if self.enable_auto_feature_score_collection and self.feature_score_mapping is None:
            self.feature_score_mapping = {}
