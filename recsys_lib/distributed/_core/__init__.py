"""Core contracts of the distributed package: awaitables, enums, ShardingEnv, sharding plans, the sharder protocol.

Private room: import the owning module (``recsys_lib.distributed._core.<module>``); the public
names are re-exported by the TorchRec-named faces at ``recsys_lib/distributed/``.
"""
