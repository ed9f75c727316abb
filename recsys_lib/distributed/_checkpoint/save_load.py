"""Saving and loading a committed checkpoint in one call (plain DCP underneath).

``save_checkpoint(root, step, state)`` = ``dcp.save(state, checkpoint_dir(root, step))`` + :func:`commit`
(the facts in ``extra``, e.g. the data position, go into the marker); ``load_checkpoint(path, state)``
refuses an uncommitted folder, then ``dcp.load`` s into ``state`` in place and returns the marker's facts.
``state`` is what you would give DCP: e.g. ``{"model": dmp.state_dict(), "optim": dmp.fused_optimizer.state_dict()}``
(empty dicts, such as a stateless optimizer's per-parameter state, are dropped: DCP cannot store them).
"""

from typing import Any, Dict, Optional, Set

import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from recsys_lib.distributed._checkpoint.rowwise_state import BY_COLUMN
from recsys_lib.distributed._checkpoint.committed import checkpoint_dir, commit, drop_empty, read_marker


def save_checkpoint(
    root: str, step: int, state: Dict[str, Any], extra: Optional[Dict[str, Any]] = None,
    group: Optional[dist.ProcessGroup] = None,
) -> str:
    """Writes ``state`` to ``root/step_<step>`` and commits it (collective); returns the folder.

    Args:
        root: the folder holding every checkpoint of a run.
        step: the training step (names the folder; kept in the marker as ``"step"``).
        state: nested dict of tensors / ShardedTensors / values, as for ``dcp.save``.
        extra: JSON-able facts kept in the marker (data position, epoch, ...).
        group: the process group (default: the world).
    """
    path = checkpoint_dir(root, step)
    dcp.save(drop_empty(state), checkpoint_id=path, process_group=group)
    commit(path, extra={"step": step, **dict(extra or {})}, group=group)
    return path


def load_checkpoint(path: str, state: Dict[str, Any], group: Optional[dist.ProcessGroup] = None) -> Dict[str, Any]:
    """Loads the committed checkpoint at ``path`` into ``state`` (in place, collective) and returns the facts
    stored with it. ``ValueError`` naming the folder if it is incomplete.

    After it, give each part to its owner: ``dmp.load_state_dict(state["model"])``,
    ``dmp.fused_optimizer.load_state_dict(state["optim"])``.
    """
    facts = read_marker(path)
    pruned = _drop_absent_by_column(drop_empty(state), set(dcp.FileSystemReader(path).read_metadata().state_dict_metadata))
    dcp.load(pruned, checkpoint_id=path, process_group=group)
    _copy_back(state, pruned)
    return facts


def _drop_absent_by_column(state: Dict[str, Any], stored: Set[str], prefix: str = "") -> Dict[str, Any]:
    """``state`` without the per-column row-wise states (``*_by_column``) that the checkpoint lacks: it was saved
    under a plan without that column split, and loading falls back to the ``(R,)`` mean (``rowwise_state.py``)."""
    out: Dict[str, Any] = {}
    for k, v in state.items():
        fqn = f"{prefix}{k}"
        if isinstance(v, dict):
            out[k] = _drop_absent_by_column(v, stored, fqn + ".")
        elif not (str(k).endswith(BY_COLUMN) and fqn not in stored):
            out[k] = v
    return out


def _copy_back(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    # DCP replaces non-tensor leaves (ints, floats) in the dict it was given; tensors are loaded in place.
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _copy_back(dst[k], v)
        else:
            dst[k] = v
