"""Waiting on an issued collective, with an error that says which collective failed.

The backend's error for a dead or stalled peer ("Connection closed by peer [127.0.0.1]:port", "Timed out waiting
5000ms for recv operation") names neither the collective nor the step; :func:`wait_work` re-raises it as a
:class:`CollectiveError` (a ``RuntimeError``, the original chained) prefixed with the collective's name and this rank::

    KJTAllToAll splits (all_to_all_single) failed on rank 0 of 2: Timed out waiting 3000ms for recv ...

Timing is the process group's: a stalled peer still fails after the group's ``timeout``, a dead one as soon as
the backend notices the closed connection.
"""

from typing import Optional

import torch.distributed as dist


class CollectiveError(RuntimeError):
    """A collective that did not complete (a peer crashed, or stopped calling collectives and the process group's
    ``timeout`` passed); the message names the collective and this rank, the backend's error is chained."""


def wait_work(work: dist.Work, collective: str, group: Optional[dist.ProcessGroup] = None) -> None:
    """``work.wait()``; on a backend error raises :class:`CollectiveError` naming ``collective``, this rank and the
    world size (the backend's error chained)."""
    try:
        work.wait()
    except RuntimeError as e:
        where = ""
        if dist.is_initialized():
            where = f" on rank {dist.get_rank(group)} of {dist.get_world_size(group)}"
        raise CollectiveError(f"{collective} failed{where}: {e}") from e
