"""DistributedModelParallel train step over an EmbeddingBagCollection, TW and RW, world size 1 and 2 (issues 4, 5).

    .venv/bin/python benchmarks/run.py --case dmp --repeats 10 --warmup 5
    .venv-compare/bin/python benchmarks/run.py --case dmp --repeats 10 --warmup 5 --compare torchrec

Model: one EBC of 26 tables x 100k rows x D=64 (one feature each), built on ``meta``; row-wise Adagrad (lr 0.01)
attached with ``apply_optimizer_in_backward`` before sharding, so DMP fuses it into the TBE backward. Plan forced
with the plan helpers: ``tw`` = ``table_wise(rank=i % world_size)`` for table i, ``rw`` = ``row_wise()`` for all.
Each rank gets its own batch of 2048 samples, bag length uniform in [0, 40] (mean 20), ids uniform. ``*vbe*`` sizes:
variable batch per feature: every feature has 512 distinct bags (``stride_per_key_per_rank``) and ``inverse_indices``
expand the pooled output to the 2048 samples (4x fewer ids sent and looked up).

Sizes are ``<sharding>_ws<world size>``. The ranks are spawned processes (gloo on 127.0.0.1, one intra-op thread
each, also for world size 1) that stay alive while their size runs; the timed op sends "step" to every rank and
waits until all have finished one forward + backward (incl. the fused update; no dense optimizer), so the time
is that of the slowest rank plus a pipe round trip (well under 1 ms). A fresh KJT per step is built from
precomputed keys/lengths/values inside the step (cheap: no copies). Both libraries' groups exist side by side
but only one steps at a time. Groups of an earlier size are stopped when the next size is built.
"""

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Dict, List

import torch

TABLES, ROWS, DIM, BATCH, MEAN_IDS = 26, 100_000, 64, 2048, 20

SIZES = {"tw_ws1": ("tw", 1), "tw_ws2": ("tw", 2), "rw_ws1": ("rw", 1), "rw_ws2": ("rw", 2),
         "twvbe_ws2": ("tw", 2), "rwvbe_ws2": ("rw", 2)}
VBE_UNIQUE = BATCH // 4  # variable batch: each feature has BATCH / 4 distinct bags, expanded by inverse_indices


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _build_model(lib: str, sharding: str, world_size: int):
    """Sharded DMP model with fused row-wise Adagrad, and the KJT class; runs on a rank inside its process group."""
    if lib == "torchrec":
        from torchrec.distributed.model_parallel import DistributedModelParallel
        from torchrec.distributed.sharding_plan import construct_module_sharding_plan, row_wise, table_wise
        from torchrec.distributed.types import ShardingPlan
        from torchrec.modules.embedding_configs import EmbeddingBagConfig
        from torchrec.modules.embedding_modules import EmbeddingBagCollection
        from torchrec.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
        from torchrec.optim.rowwise_adagrad import RowWiseAdagrad
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
    else:
        from recsys_lib.distributed.model_parallel import DistributedModelParallel
        from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise, table_wise
        from recsys_lib.distributed.types import ShardingPlan
        from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
        from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
        from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
        from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad
        from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            tables = [EmbeddingBagConfig(num_embeddings=ROWS, embedding_dim=DIM, name=f"t{i}",
                                         feature_names=[f"f{i}"]) for i in range(TABLES)]
            self.ebc = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))

        def forward(self, kjt):
            return self.ebc(kjt)

    model = Model()
    apply_optimizer_in_backward(RowWiseAdagrad, model.ebc.parameters(), {"lr": 0.01})
    if sharding == "tw":
        gens = {f"t{i}": table_wise(rank=i % world_size) for i in range(TABLES)}
    else:
        gens = {f"t{i}": row_wise() for i in range(TABLES)}
    module_plan = construct_module_sharding_plan(model.ebc, gens, local_size=world_size, world_size=world_size,
                                                 device_type="cpu")
    dmp = DistributedModelParallel(model, device=torch.device("cpu"), plan=ShardingPlan({"ebc": module_plan}))
    return dmp, KeyedJaggedTensor


def _batch(rank: int, vbe: bool):
    """Keys, lengths, values (and for VBE the per-key batches and inverse indices) of one rank's batch."""
    g = torch.Generator().manual_seed(1000 + rank)
    per_key = VBE_UNIQUE if vbe else BATCH
    lengths = torch.randint(0, 2 * MEAN_IDS + 1, (TABLES * per_key,), generator=g, dtype=torch.int32)
    values = torch.randint(0, ROWS, (int(lengths.sum()),), generator=g, dtype=torch.int64)
    keys = [f"f{i}" for i in range(TABLES)]
    kwargs = {}
    if vbe:
        kwargs = {"stride_per_key_per_rank": [[per_key]] * TABLES,
                  "inverse_indices": (keys, torch.randint(0, per_key, (TABLES, BATCH), generator=g))}
    return keys, lengths, values, kwargs


def _worker(rank: int, world_size: int, port: int, lib: str, sharding: str, vbe: bool, conn) -> None:
    """One rank: build the model, then run a train step per "step" message until "stop"."""
    import torch.distributed as dist

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=300))
        dmp, KJT = _build_model(lib, sharding, world_size)
        keys, lengths, values, kwargs = _batch(rank, vbe)
        grad = torch.randn(BATCH, TABLES * DIM, generator=torch.Generator().manual_seed(rank))
        conn.send(("ready", None))
    except BaseException as e:  # noqa: B036 - report to the parent instead of hanging it
        import traceback

        conn.send(("error", traceback.format_exc()))
        raise SystemExit(1) from e
    while True:
        msg = conn.recv()
        if msg == "stop":
            break
        try:
            out = dmp(KJT(keys=keys, values=values, lengths=lengths, **kwargs))
            out.values().backward(grad)
            conn.send(("done", None))
        except BaseException:  # noqa: B036
            import traceback

            conn.send(("error", traceback.format_exc()))
            break
    dist.destroy_process_group()


class _Group:
    """``world_size`` persistent rank processes of one library; ``step()`` runs one train step on all ranks."""

    def __init__(self, lib: str, sharding: str, world_size: int, vbe: bool = False) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.conns, self.procs = [], []
        for r in range(world_size):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=_worker, args=(r, world_size, port, lib, sharding, vbe, child), daemon=True)
            p.start()
            self.conns.append(parent)
            self.procs.append(p)
        self._collect("ready", timeout_s=600)

    def _collect(self, expected: str, timeout_s: float) -> None:
        for r, c in enumerate(self.conns):
            if not c.poll(timeout_s):
                self.stop()
                raise RuntimeError(f"dmp benchmark: rank {r} sent nothing within {timeout_s:.0f} s")
            kind, payload = c.recv()
            if kind != expected:
                self.stop()
                raise RuntimeError(f"dmp benchmark: rank {r} failed:\n{payload}")

    def step(self, _arg: Any = None) -> None:
        for c in self.conns:
            c.send("step")
        self._collect("done", timeout_s=300)

    def stop(self) -> None:
        for c in self.conns:
            try:
                c.send("stop")
            except (BrokenPipeError, OSError):
                pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()


def _live() -> Dict[str, List[_Group]]:
    """Groups started per size (kept on the function so there is no bare module global)."""
    if not hasattr(_live, "groups"):
        import atexit

        _live.groups = {}
        atexit.register(lambda: [g.stop() for gs in _live.groups.values() for g in gs])
    return _live.groups


def _lib_name(lib) -> str:
    return "torchrec" if lib.KeyedJaggedTensor.__module__.startswith("torchrec") else "recsys_lib"


def build(lib, size_name: str) -> list:
    sharding, world_size = SIZES[size_name]
    groups = _live()
    for name in [n for n in groups if n != size_name]:  # the harness has finished that size
        for g in groups.pop(name):
            g.stop()
    group = _Group(_lib_name(lib), sharding, world_size, vbe="vbe" in size_name)
    groups.setdefault(size_name, []).append(group)
    return [Bench("train_step", lambda: None, group.step)]
