"""Checkpointing sharded models: plan-independent optimizer state, crash-safe checkpoint folders, gathering
unsharded weights for serving. The public face is ``recsys_lib.distributed.checkpoint``."""
