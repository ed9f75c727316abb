"""Periodic, atomic checkpoints of a sharded DLRM run, and resume (same world size and plan).

Layout::

    <dir>/step_<n>/rank<r>.pt   this rank's tensors: model (sharded tables: its local shards), optimizer state
    <dir>/latest                "step_<n>": written last, by rank 0, once every rank's file is in place

Each file is written to ``*.tmp`` and renamed (``os.replace`` is atomic), and ``latest`` moves only after a
barrier, so a crash at any point leaves the previous checkpoint intact and ``latest`` pointing at it.
Resume copies the saved tensors into the live ones in place (table shards, Adagrad/RowWiseAdagrad state).
"""

import os
import warnings
from typing import Any, Dict, Optional

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor


def _local_tensors(state: Dict[str, Any], prefix: str, out: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Flattens nested state into ``{path: tensor}``; a ShardedTensor contributes its local shards."""
    for key, value in state.items():
        path = f"{prefix}{key}"
        if isinstance(value, ShardedTensor):
            for i, shard in enumerate(value.local_shards()):
                out[f"{path}#{i}"] = shard.tensor
        elif isinstance(value, torch.Tensor):
            out[path] = value
        elif isinstance(value, dict):
            _local_tensors(value, f"{path}/", out)
    return out


def _live_tensors(model: torch.nn.Module, optimizer: Any) -> Dict[str, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ShardedTensor deprecation notice
        live = _local_tensors(model.state_dict(), "model/", {})
        return _local_tensors(optimizer.state_dict()["state"], "optim/", live)


def save_checkpoint(ckpt_dir: str, step: int, epoch: int, model: torch.nn.Module, optimizer: Any) -> str:
    """Writes this rank's file for ``step``; collective (every rank calls it). Returns the step folder."""
    rank = dist.get_rank()
    folder = os.path.join(ckpt_dir, f"step_{step}")
    os.makedirs(folder, exist_ok=True)
    payload = {
        "tensors": {k: v.detach().clone() for k, v in _live_tensors(model, optimizer).items()},
        "step": step,
        "epoch": epoch,
        "world_size": dist.get_world_size(),
    }
    path = os.path.join(folder, f"rank{rank}.pt")
    torch.save(payload, path + ".tmp")
    os.replace(path + ".tmp", path)
    dist.barrier()  # every rank's file is complete before `latest` moves
    if rank == 0:
        latest = os.path.join(ckpt_dir, "latest")
        with open(latest + ".tmp", "w") as f:
            f.write(f"step_{step}\n")
        os.replace(latest + ".tmp", latest)
    dist.barrier()
    return folder


def load_checkpoint(ckpt_dir: str, model: torch.nn.Module, optimizer: Any) -> Optional[Dict[str, int]]:
    """Restores the ``latest`` checkpoint into ``model``/``optimizer`` in place; None when there is none.

    Returns ``{"step": ..., "epoch": ...}``. Raises when the world size differs or a tensor is missing.
    """
    latest = os.path.join(ckpt_dir, "latest")
    if not os.path.exists(latest):
        return None
    with open(latest) as f:
        folder = os.path.join(ckpt_dir, f.read().strip())
    payload = torch.load(os.path.join(folder, f"rank{dist.get_rank()}.pt"), weights_only=True)
    if payload["world_size"] != dist.get_world_size():
        raise RuntimeError(f"checkpoint {folder} was written by {payload['world_size']} ranks, "
                           f"this run has {dist.get_world_size()}: resume needs the same world size")
    saved = payload["tensors"]
    live = _live_tensors(model, optimizer)
    missing = sorted(set(live) - set(saved))
    if missing:
        raise RuntimeError(f"checkpoint {folder} lacks {missing[:5]} ({len(missing)} tensors)")
    with torch.no_grad():
        for key, tensor in live.items():
            tensor.copy_(saved[key])
    return {"step": int(payload["step"]), "epoch": int(payload["epoch"])}
