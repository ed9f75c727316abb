"""TorchRec's multi-process test API (``torchrec.distributed.test_utils.multi_process``), on CPU with gloo.

Users of TorchRec write distributed tests as::

    class MyTest(MultiProcessTestBase):
        def test_it(self):
            self._run_multi_process_test(callable=_body, world_size=2, scale=2.0)

    def _body(rank, world_size, scale):
        with MultiProcessContext(rank, world_size, backend="gloo") as ctx:
            ...  # ctx.pg, ctx.device

The parent sets ``MASTER_ADDR`` / ``MASTER_PORT`` (a free port) in ``setUp`` or ``run_multi_process_func``; the
spawned ranks inherit them. ``MultiProcessContext`` is where a rank joins the group.
"""

import functools
import multiprocessing
import os
import random
import time
import traceback
import unittest
from typing import Any, Callable, Dict, List, Optional

import torch
import torch.distributed as dist

from recsys_lib._public import public_at
from recsys_lib.distributed.test_utils.multi_process import get_free_port


def init_distributed_single_host(
    rank: int, world_size: int, backend: str, local_size: Optional[int] = None
) -> dist.ProcessGroup:
    """Joins (re-creating if needed) the default group of ``world_size`` ranks on this host; sets
    ``LOCAL_WORLD_SIZE`` / ``LOCAL_RANK`` for ``local_size`` ranks per simulated host. Returns the world group."""
    os.environ["LOCAL_WORLD_SIZE"] = str(local_size if local_size else world_size)
    os.environ["LOCAL_RANK"] = str(rank % local_size if local_size else rank)
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group(rank=rank, world_size=world_size, backend=backend)
    return dist.group.WORLD  # type: ignore[return-value]


@public_at("recsys_lib.distributed.test_utils.multi_process")
class MultiProcessContext:
    """One rank's test context: picks the device (``cuda:rank`` when there are enough GPUs, else CPU), optionally
    makes torch deterministic, and joins the process group on ``__enter__`` (left on ``__exit__``).

    Args:
        rank / world_size: this rank and the number of ranks.
        backend: ``"gloo"`` (CPU) or ``"nccl"``.
        local_size: ranks per simulated host (default: all on one host).
        use_deterministic_algorithms: ``torch.use_deterministic_algorithms(True)`` while inside.
        disable_cuda_tf_32: turn TF32 off on CUDA (exact comparisons).
    """

    def __init__(
        self,
        rank: int,
        world_size: int,
        backend: str = "gloo",
        local_size: Optional[int] = None,
        use_deterministic_algorithms: bool = True,
        disable_cuda_tf_32: bool = True,
    ) -> None:
        self.rank = rank
        self.world_size = world_size
        self.backend = backend
        self.local_size = local_size
        self.disable_cuda_tf_32 = disable_cuda_tf_32
        self.device: torch.device = torch.device("cpu")
        if torch.cuda.is_available() and world_size <= torch.cuda.device_count():
            self.device = torch.device(f"cuda:{rank}")
            torch.cuda.set_device(self.device)
        if torch.cuda.is_available() and (disable_cuda_tf_32 or use_deterministic_algorithms):
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        if use_deterministic_algorithms:
            torch.use_deterministic_algorithms(True)
        self.pg: Optional[dist.ProcessGroup] = None

    def __enter__(self) -> "MultiProcessContext":
        self.pg = init_distributed_single_host(self.rank, self.world_size, self.backend, self.local_size)
        return self

    def __exit__(self, exc_type: Any, exc_instance: Any, traceback: Any) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.use_deterministic_algorithms(False)
        if torch.cuda.is_available() and self.disable_cuda_tf_32:
            torch.backends.cudnn.allow_tf32 = True


def seed_and_log(wrapped_func: Callable) -> Callable:
    """Decorator: seeds torch, ``random`` (and numpy if installed) from the clock and prints the seed first."""

    @functools.wraps(wrapped_func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        seed = int(time.time() * 1000) % (1 << 31)
        print(f"Using random seed: {seed}")
        torch.manual_seed(seed)
        random.seed(seed)
        try:
            import numpy as np
        except ImportError:
            np = None  # type: ignore[assignment]
        if np is not None:
            np.random.seed(seed)
        return wrapped_func(*args, **kwargs)

    return wrapper


def _set_rendezvous() -> None:
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ["MASTER_PORT"] = str(get_free_port())
    os.environ["GLOO_DEVICE_TRANSPORT"] = "TCP"
    os.environ["NCCL_SOCKET_IFNAME"] = "lo"


def _call_rank(func: Callable[..., Any], kwargs: Dict[str, Any]) -> Any:
    """Runs in a child; exceptions come back as text (an exception object may not pickle)."""
    try:
        return func(**kwargs)
    except BaseException as e:
        raise RuntimeError(f"rank {kwargs.get('rank')} failed:\n{traceback.format_exc()}") from e


def run_multi_process_func(
    func: Callable[..., Any],
    multiprocessing_method: str = "spawn",
    use_deterministic_algorithms: bool = True,
    world_size: int = 2,
    **kwargs: Any,
) -> List[Any]:
    """Calls ``func(rank=r, world_size=W, **kwargs)`` on ``W`` processes (in-process when ``W == 1``); returns the
    results by rank. ``func`` joins the group itself (e.g. with ``MultiProcessContext``)."""
    _set_rendezvous()
    torch.use_deterministic_algorithms(use_deterministic_algorithms)
    if world_size == 1:
        return [func(**dict(kwargs, rank=0, world_size=1))]
    ctx = multiprocessing.get_context(multiprocessing_method)
    with ctx.Pool(processes=world_size) as pool:
        return pool.starmap(_call_rank, [(func, dict(kwargs, rank=r, world_size=world_size)) for r in range(world_size)])


@public_at("recsys_lib.distributed.test_utils.multi_process")
class MultiProcessTestBase(unittest.TestCase):
    """``unittest`` base whose tests run a function on several spawned ranks (see the module docstring).

    Args:
        methodName: the test method.
        mp_init_mode: start method; ``"spawn"`` is used (forkserver caches the parent's environment, and the
            rendezvous port changes per test).
    """

    def __init__(self, methodName: str = "runTest", mp_init_mode: str = "forkserver") -> None:
        super().__init__(methodName)
        self._mp_init_mode: str = "spawn"
        self._requested_mp_init_mode = mp_init_mode

    @seed_and_log
    def setUp(self) -> None:
        _set_rendezvous()
        os.environ["NCCL_DEBUG"] = "WARN"
        torch.use_deterministic_algorithms(True)

    def tearDown(self) -> None:
        torch.use_deterministic_algorithms(False)
        os.environ.pop("GLOO_DEVICE_TRANSPORT", None)
        os.environ.pop("NCCL_SOCKET_IFNAME", None)
        super().tearDown()

    def _run_multi_process_test(self, *, callable: Callable[..., None], world_size: int = 2, **kwargs: Any) -> None:
        """Runs ``callable(rank=r, world_size=W, **kwargs)`` on ``W`` ranks; fails with every rank's traceback."""
        ctx = multiprocessing.get_context(self._mp_init_mode)
        errors: List[str] = []
        with ctx.Pool(processes=world_size) as pool:
            pending = [
                pool.apply_async(_call_rank, (callable, dict(kwargs, rank=r, world_size=world_size)))
                for r in range(world_size)
            ]
            for result in pending:
                try:
                    result.get()
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    errors.append(str(e))
        self.assertEqual(len(errors), 0, "Detected at least one unsuccessful run:\n" + "\n".join(errors))

    def _run_multi_process_test_per_rank(
        self, *, callable: Callable[..., None], world_size: int, kwargs_per_rank: List[Dict[str, Any]]
    ) -> None:
        """Like ``_run_multi_process_test`` with each rank's own keyword arguments; checks every exit code."""
        ctx = multiprocessing.get_context(self._mp_init_mode)
        procs = []
        for rank in range(world_size):
            p = ctx.Process(target=callable, kwargs=dict(kwargs_per_rank[rank], rank=rank, world_size=world_size))
            p.start()
            procs.append(p)
        for p in procs:
            p.join()
            self.assertEqual(0, p.exitcode)
