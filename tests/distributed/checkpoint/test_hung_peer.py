"""A rank that stops calling collectives makes its peers fail after the process group's timeout, with an
error naming the collective (never a hang)."""

import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.test_utils import run_multiprocess

TIMEOUT_S = 3


def _hung_peer(rank: int, world_size: int):
    from recsys_lib.distributed._collectives.primitives import all_to_all_flat

    group = dist.new_group(backend="gloo", timeout=timedelta(seconds=TIMEOUT_S))
    # Both ranks take part once, so the group is up; then rank 1 stops calling collectives.
    all_to_all_flat(torch.ones(2), [1, 1], [1, 1], group).wait()
    if rank == 1:
        time.sleep(TIMEOUT_S + 6)
        return None
    start = time.monotonic()
    try:
        all_to_all_flat(torch.ones(2), [1, 1], [1, 1], group).wait()
    except RuntimeError as e:
        return time.monotonic() - start, type(e).__name__, str(e)
    return None


@pytest.mark.slow  # a rank sleeps past the timeout on purpose
@pytest.mark.dist
def test_hung_peer_fails_within_the_timeout_naming_the_collective() -> None:
    result = run_multiprocess(_hung_peer, 2, timeout_s=120)[0]
    assert result is not None, "rank 0 did not fail"
    elapsed, kind, message = result
    assert kind == "CollectiveError" and "all_to_all" in message, message
    assert elapsed < TIMEOUT_S + 20, elapsed
