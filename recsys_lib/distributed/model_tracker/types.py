"""Types of the model delta tracker (``torchrec.distributed.model_tracker.types``)."""

import enum
from dataclasses import dataclass, field
from typing import List, Optional

import torch


@dataclass
class IndexedLookup:
    """Ids (and optional states ``(N, D)``) looked up in one batch.

    Attributes:
        batch_idx: the tracker's batch index when recorded.
        ids: ``(N,)`` local rows.
        states: ``(N, D)`` embeddings / optimizer states, or None.
        compact: whether this entry is the result of a compaction.
    """

    batch_idx: int
    ids: torch.Tensor
    states: Optional[torch.Tensor]
    compact: bool = False


@dataclass
class RawIndexedLookup:
    """Ids with their raw (pre-remap) ids and runtime metadata, for raw-id tracking."""

    batch_idx: int
    ids: torch.Tensor
    raw_ids: Optional[torch.Tensor] = None
    runtime_meta: Optional[torch.Tensor] = None


@dataclass
class UniqueRows:
    """Distinct ids ``(U,)`` and, per id, one state row ``(U, D)`` (or None)."""

    ids: torch.Tensor
    states: Optional[torch.Tensor]


class TrackingMode(enum.Enum):
    """What the tracker records per looked-up id.

    ``ID_ONLY``: ids. ``EMBEDDING``: ids and the first embedding seen since the last read (EC only: an EBC's lookup
    returns pooled sums). ``MOMENTUM_LAST`` / ``MOMENTUM_DIFF`` / ``ROWWISE_ADAGRAD``: ids with optimizer states.
    """

    ID_ONLY = "id_only"
    EMBEDDING = "embedding"
    MOMENTUM_LAST = "momentum_last"
    MOMENTUM_DIFF = "momentum_diff"
    ROWWISE_ADAGRAD = "rowwise_adagrad"


class UpdateMode(enum.Enum):
    """Which state is kept for an id seen several times: none, the first, or the last."""

    NONE = "none"
    FIRST = "first"
    LAST = "last"


class Trackers(enum.Enum):
    """Tracker kinds a ``DistributedModelParallel`` can hold (keys of ``model_trackers`` by ``.name``)."""

    DELTA_TRACKER = "delta_tracker"
    RAW_ID_TRACKER = "raw_id_tracker"


@dataclass
class RawIdTrackerConfig:
    """Configuration of a raw-id tracker.

    Attributes:
        delete_on_read: drop what was read.
        fqns_to_skip: module names not tracked.
    """

    delete_on_read: bool = True
    fqns_to_skip: List[str] = field(default_factory=list)


@dataclass
class DeltaTrackerConfig:
    """Configuration of ``ModelDeltaTrackerTrec`` (``DistributedModelParallel.init_torchrec_delta_tracker``).

    Attributes:
        tracking_mode: what to record.
        consumers: independent readers (default one, ``"default"``).
        delete_on_read: drop rows every consumer has read.
        auto_compact: compact after every output dist instead of on read.
        fqns_to_skip: module names not tracked.
    """

    tracking_mode: TrackingMode = TrackingMode.ID_ONLY
    consumers: Optional[List[str]] = None
    delete_on_read: bool = True
    auto_compact: bool = False
    fqns_to_skip: List[str] = field(default_factory=list)


@dataclass
class ModelTrackerConfigs:
    """Trackers ``DistributedModelParallel`` builds at construction."""

    raw_id_tracker_config: Optional[RawIdTrackerConfig] = None
