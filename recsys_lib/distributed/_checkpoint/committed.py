"""Crash-safe checkpoint folders: a checkpoint counts only once it is complete.

DCP writes every rank's data files, then rank 0 writes ``.metadata`` last. On top of that,
:func:`commit` — after a barrier, so every rank's files are written — has rank 0 write a ``COMMITTED`` marker
atomically (a temporary file, ``fsync``, then ``os.replace``). A folder without the marker is incomplete (a
crash mid-save); readers skip it with a message saying why::

    root/
      step_00000010/   .metadata  __0_0.distcp  __1_0.distcp  COMMITTED   <- newest complete checkpoint
      step_00000020/   __0_0.distcp                                       <- cut short: skipped

Helpers: :func:`checkpoint_dir` (folder of a step), :func:`latest_committed` (newest complete one),
:func:`keep_last` (delete all but the newest ``k`` complete ones, and incomplete ones older than those).
"""

import json
import logging
import os
import re
import shutil
from typing import Any, Dict, List, Optional, Tuple

import torch.distributed as dist

logger = logging.getLogger(__name__)

MARKER = "COMMITTED"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def drop_empty(value: Any) -> Any:
    """``value`` without empty dicts (recursively): DCP stores no entry for ``{}`` (e.g. the per-table state
    of a stateless fused SGD), and then cannot find it when loading."""
    if isinstance(value, dict):
        out = {k: drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if not (isinstance(v, dict) and not v)}
    return value


def checkpoint_dir(root: str, step: int) -> str:
    """``root/step_<step, 8 digits>``."""
    if step < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    return os.path.join(root, f"step_{step:08d}")


def is_committed(path: str) -> bool:
    return os.path.isfile(os.path.join(path, MARKER))


def commit(path: str, extra: Optional[Dict[str, Any]] = None, group: Optional[dist.ProcessGroup] = None) -> None:
    """Marks the checkpoint at ``path`` complete (collective: a barrier, then rank 0 writes the marker).

    Args:
        path: the folder DCP wrote.
        extra: small JSON-able facts kept in the marker (e.g. ``{"step": 10}``).
        group: the group that wrote the checkpoint (default: the world).
    """
    if dist.is_initialized():
        dist.barrier(group=group)
        rank = dist.get_rank(group)
    else:
        rank = 0
    if rank == 0:
        if not os.path.isfile(os.path.join(path, ".metadata")):
            raise RuntimeError(f"commit: {path} has no DCP .metadata; the save did not finish")
        tmp = os.path.join(path, f".{MARKER}.tmp")
        with open(tmp, "w") as f:
            json.dump(dict(extra or {}), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(path, MARKER))
        _fsync_dir(path)
    if dist.is_initialized():
        dist.barrier(group=group)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_marker(path: str) -> Dict[str, Any]:
    """The facts :func:`commit` stored; ``ValueError`` naming the folder if it is not committed."""
    if not is_committed(path):
        raise ValueError(f"checkpoint {path} is incomplete (no {MARKER} marker): it was cut short")
    with open(os.path.join(path, MARKER)) as f:
        return json.load(f)


def step_dirs(root: str) -> List[Tuple[int, str]]:
    """``(step, folder)`` of every ``step_<n>`` folder under ``root``, oldest first."""
    if not os.path.isdir(root):
        return []
    out = []
    for name in os.listdir(root):
        m = _STEP_DIR.match(name)
        if m and os.path.isdir(os.path.join(root, name)):
            out.append((int(m.group(1)), os.path.join(root, name)))
    return sorted(out)


def latest_committed(root: str) -> Optional[str]:
    """The newest committed checkpoint folder under ``root`` (``None`` if there is none); newer incomplete
    ones are skipped with a warning naming them."""
    for step, path in reversed(step_dirs(root)):
        if is_committed(path):
            return path
        logger.warning("skipping checkpoint %s (step %d): incomplete, no %s marker (cut short by a crash?)",
                       path, step, MARKER)
    return None


def keep_last(root: str, k: int) -> List[str]:
    """Deletes all but the newest ``k`` committed checkpoints (and incomplete ones older than the newest
    committed one); returns the deleted folders. Call on one rank, after :func:`commit`."""
    if k < 1:
        raise ValueError(f"keep_last: k must be >= 1, got {k}")
    dirs = step_dirs(root)
    committed = [(s, p) for s, p in dirs if is_committed(p)]
    if not committed:
        return []
    keep = {p for _, p in committed[-k:]}
    newest = committed[-1][0]
    doomed = [p for s, p in dirs if p not in keep and (is_committed(p) or s < newest)]
    for p in doomed:
        shutil.rmtree(p, ignore_errors=True)
    return doomed
