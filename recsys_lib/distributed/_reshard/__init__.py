"""Dynamic resharding: plan deltas, point-to-point moves of table shards and optimizer state between plans, and
rebuilding a sharded module under a changed plan (``sharding/dynamic_sharding.py``, ``DMP.reshard``)."""
