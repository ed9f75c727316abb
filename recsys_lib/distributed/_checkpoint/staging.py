"""Staging a sharded state dict for ``torch.distributed.checkpoint.async_save``.

DCP's default stager copies tensors through their storage, which a ``ShardedTensor`` (our sharded tables and
their optimizer state) does not expose: ``dcp.async_save`` fails on it. :class:`ShardedTensorStager` copies
each ``ShardedTensor``'s local shards instead (same metadata, same process group) and every other tensor with
``clone``, on CPU, before the background write starts; training may then change the originals::

    save_group = dist.new_group(backend="gloo")   # the background write must not share training's group
    future = dcp.async_save(state, checkpoint_id=path, async_stager=ShardedTensorStager(), process_group=save_group)
    ...                       # train on
    future.result()           # the checkpoint holds the values at the call
"""

from typing import Any

import torch
from torch.distributed._shard.sharded_tensor import Shard, ShardedTensor
from torch.distributed.checkpoint.staging import AsyncStager


def snapshot(value: Any) -> Any:
    """A CPU copy of a (nested) state dict: ``ShardedTensor`` s shard by shard, tensors cloned, containers
    rebuilt, other values kept."""
    if isinstance(value, ShardedTensor):
        shards = [Shard(tensor=s.tensor.detach().to("cpu", copy=True), metadata=s.metadata) for s in value.local_shards()]
        return ShardedTensor._init_from_local_shards_and_global_metadata(
            shards, value.metadata(), process_group=value._process_group
        )
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: snapshot(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(snapshot(v) for v in value)
    return value


class ShardedTensorStager(AsyncStager):
    """An ``AsyncStager`` for state dicts holding ``ShardedTensor`` s (see the module docstring): staging is a
    synchronous CPU copy (:func:`snapshot`), so nothing is left to wait for afterwards."""

    _synchronize_after_execute: bool = False

    def stage(self, state_dict: Any) -> Any:
        return snapshot(state_dict)

    def synchronize_staging(self) -> None:
        pass

    def close(self) -> None:
        pass
