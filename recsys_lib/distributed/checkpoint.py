"""Checkpoint helpers for sharded models (recsys_lib's own; TorchRec has no checkpoint API).

Plain ``torch.distributed.checkpoint`` works on ``DistributedModelParallel`` state: save under one plan and
world size, load under any other (``docs/checkpointing.md``)::

    import torch.distributed.checkpoint as dcp
    state = {"model": dmp.state_dict(), "optim": dmp.fused_optimizer.state_dict()}
    dcp.save(state, checkpoint_id=path)
    ...                                   # another plan, another world size
    state = {"model": dmp2.state_dict(), "optim": dmp2.fused_optimizer.state_dict()}
    dcp.load(state, checkpoint_id=path)
    dmp2.load_state_dict(state["model"]); dmp2.fused_optimizer.load_state_dict(state["optim"])

This module adds crash safety (a checkpoint counts once committed: :func:`save_checkpoint`,
:func:`latest_committed`, :func:`keep_last`), a stager for ``dcp.async_save`` (:class:`ShardedTensorStager`),
and gathering unsharded weights for serving (:func:`state_dict_gather`).
"""

from recsys_lib.distributed._checkpoint.committed import (  # noqa: F401
    checkpoint_dir,
    commit,
    is_committed,
    keep_last,
    latest_committed,
    read_marker,
)
from recsys_lib.distributed._checkpoint.gather import state_dict_gather  # noqa: F401
from recsys_lib.distributed._checkpoint.save_load import load_checkpoint, save_checkpoint  # noqa: F401
from recsys_lib.distributed._checkpoint.staging import ShardedTensorStager  # noqa: F401

__all__ = [
    "ShardedTensorStager", "checkpoint_dir", "commit", "is_committed", "keep_last", "latest_committed",
    "load_checkpoint", "read_marker", "save_checkpoint", "state_dict_gather",
]
