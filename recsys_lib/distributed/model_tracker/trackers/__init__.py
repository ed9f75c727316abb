"""Specialised model trackers (``torchrec.distributed.model_tracker.trackers``)."""

from recsys_lib.distributed.model_tracker.trackers.raw_id_tracker import RawIdTracker  # noqa: F401
