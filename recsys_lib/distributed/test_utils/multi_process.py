"""Spawn a gloo (or NCCL) process group on 127.0.0.1 and run one function on every rank.

The parent picks a free port, starts ``world_size`` processes with the ``spawn`` start method, and each
rank runs ``fn(rank, world_size, *args, **kwargs)`` inside an initialised default process group. Return
values travel back serialised with ``torch.save`` (so tensors survive the child's exit) and come back as
a list indexed by rank. A failure on any rank is re-raised in the parent with that rank's traceback; a
rank that does not finish within ``timeout_s`` is killed and reported, so a test never hangs.

Group many cases into one ``fn`` so the process group start-up (seconds per rank) is paid once.

Example::

    def _check(rank, world_size, scale):
        t = torch.full((2,), float(rank + 1)) * scale
        dist.all_reduce(t)
        return t

    out = run_multiprocess(_check, world_size=2, scale=2.0)
    assert out[0].tolist() == [6.0, 6.0]
"""

import io
import os
import queue as _queue
import socket
import time
import traceback
from datetime import timedelta
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def get_free_port() -> int:
    """Returns a TCP port on 127.0.0.1 that was free a moment ago (chosen by the OS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dumps(obj: Any) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _loads(data: bytes) -> Any:
    return torch.load(io.BytesIO(data), weights_only=False)


def _child(
    rank: int,
    world_size: int,
    port: int,
    backend: str,
    local_world_size: int,
    pg_timeout_s: float,
    fn: Callable[..., Any],
    args: Tuple[Any, ...],
    kwargs: Dict[str, Any],
    queue: Any,
) -> None:
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "RANK": str(rank),
            "WORLD_SIZE": str(world_size),
            "LOCAL_WORLD_SIZE": str(local_world_size),
            "LOCAL_RANK": str(rank % local_world_size),
        }
    )
    # Two cores are shared by every rank: one intra-op thread each avoids oversubscription.
    torch.set_num_threads(1)
    try:
        dist.init_process_group(
            backend, rank=rank, world_size=world_size, timeout=timedelta(seconds=pg_timeout_s)
        )
        result = fn(rank, world_size, *args, **kwargs)
        queue.put((rank, True, _dumps(result)))
    except BaseException:  # noqa: B036 - report anything, including assertion errors, to the parent
        queue.put((rank, False, traceback.format_exc()))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run_multiprocess(
    fn: Callable[..., Any],
    world_size: int,
    *args: Any,
    backend: str = "gloo",
    local_world_size: Optional[int] = None,
    timeout_s: float = 300.0,
    **kwargs: Any,
) -> List[Any]:
    """Runs ``fn(rank, world_size, *args, **kwargs)`` on ``world_size`` spawned ranks; returns results by rank.

    Args:
        fn: a module-level (picklable) function.
        world_size: number of ranks to spawn.
        backend: ``"gloo"`` (CPU) or ``"nccl"``.
        local_world_size: ranks per simulated host (sets ``LOCAL_WORLD_SIZE``/``LOCAL_RANK``); default all on one host.
        timeout_s: wall-clock limit for the whole group; stragglers are killed and the call raises.

    Raises:
        RuntimeError: naming the failing rank(s) with their tracebacks, or the ranks that timed out.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    lws = world_size if local_world_size is None else local_world_size
    if lws < 1 or world_size % lws != 0:
        raise ValueError(f"local_world_size={lws} must divide world_size={world_size}")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = get_free_port()
    procs = [
        ctx.Process(
            target=_child,
            args=(r, world_size, port, backend, lws, max(30.0, timeout_s), fn, args, kwargs, queue),
            daemon=True,
        )
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    results: Dict[int, Tuple[bool, Any]] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(results) < world_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                rank, ok, payload = queue.get(timeout=min(remaining, 1.0))
            except _queue.Empty:
                dead = [r for r, p in enumerate(procs) if not p.is_alive() and r not in results]
                # A rank that died without reporting (segfault, os._exit) would otherwise hang the parent.
                if dead and all(procs[r].exitcode not in (None, 0) for r in dead):
                    for r in dead:
                        results[r] = (False, f"rank {r} exited with code {procs[r].exitcode} without a result")
                continue
            results[rank] = (ok, payload)
            if not ok:
                # Peers of a failed rank usually block in a collective: give them a short grace, then stop.
                deadline = min(deadline, time.monotonic() + 10.0)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join()
    missing = [r for r in range(world_size) if r not in results]
    failures = [f"--- rank {r} ---\n{payload}" for r, (ok, payload) in sorted(results.items()) if not ok]
    if failures or missing:
        msg = "\n".join(failures)
        if missing:
            msg += f"\nranks {missing} did not finish within {timeout_s:.0f} s"
        raise RuntimeError(f"multi-process run of {getattr(fn, '__name__', fn)} failed:\n{msg}")
    return [_loads(results[r][1]) for r in range(world_size)]


# TorchRec's unittest-style API (``MultiProcessTestBase`` and friends), kept beside ``run_multiprocess``.
from recsys_lib.distributed.test_utils.multi_process_testbase import (  # noqa: E402,F401
    MultiProcessContext,
    MultiProcessTestBase,
    init_distributed_single_host,
    run_multi_process_func,
    seed_and_log,
)
