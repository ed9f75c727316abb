"""Model delta tracking (``torchrec.distributed.model_tracker``): the rows of the sharded embedding tables looked
up since a consumer last asked, for delta checkpoints and streaming fresh rows (see ``model_delta_tracker``)."""

from recsys_lib.distributed.model_tracker.delta_store import DeltaStore  # noqa: F401
from recsys_lib.distributed.model_tracker.model_delta_tracker import ModelDeltaTracker, SUPPORTED_MODULES  # noqa: F401
from recsys_lib.distributed.model_tracker.types import (  # noqa: F401
    IndexedLookup,
    ModelTrackerConfigs,
    Trackers,
    TrackingMode,
    UniqueRows,
    UpdateMode,
)
