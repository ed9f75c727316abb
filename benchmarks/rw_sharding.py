"""Row-wise sharded EBC train step (forward + backward with FBGEMM's fused row-wise Adagrad), world 1 and 2.

TorchRec's reference shape: 26 tables x 100k rows x D=64, batch 2048 per rank, bag length uniform in [0, 40].
Each rank runs in its own gloo process (one intra-op thread); the reported time is the median step time of
rank 0 (steps are synchronised by their collectives, so all ranks see about the same). With ``--compare`` both
libraries are sharded in the same ranks and step alternately (AB, BA, ...), so machine load hits both alike.

    .venv/bin/python benchmarks/rw_sharding.py                    # world 1 and 2
    .venv/bin/python benchmarks/rw_sharding.py --worlds 2 --steps 5 --rows 10000
    .venv-compare/bin/python benchmarks/rw_sharding.py --compare torchrec --steps 20
    .venv-compare/bin/python benchmarks/rw_sharding.py --compare torchrec --worlds 2 --profile recsys_lib

Measured numbers and what differs from TorchRec: benchmarks/README.md (row-wise section).
"""

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Shape:
    tables: int = 26
    rows: int = 100_000
    dim: int = 64
    batch: int = 2048
    max_len: int = 40
    steps: int = 10
    warmup: int = 3


def _batches(shape: Shape, n: int, seed: int, kjt_cls):
    import torch

    g = torch.Generator().manual_seed(seed)
    keys = [f"f{i}" for i in range(shape.tables)]
    out = []
    for _ in range(n):
        lengths = torch.randint(0, shape.max_len + 1, (shape.tables * shape.batch,), generator=g)
        values = torch.randint(0, shape.rows, (int(lengths.sum()),), generator=g)
        out.append(kjt_cls(keys=keys, values=values, lengths=lengths))
    return out


def _build(world: int, shape: Shape, lib: str):
    """Sharded EBC (fused row-wise Adagrad, all tables row-wise) of ``lib`` and its KJT class, on this rank."""
    import torch
    import torch.distributed as dist
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    if lib == "torchrec":
        from torchrec import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
        from torchrec.distributed.embeddingbag import EmbeddingBagCollectionSharder
        from torchrec.distributed.sharding_plan import construct_module_sharding_plan, row_wise
        from torchrec.distributed.types import ShardingEnv
    else:
        from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
        from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
        from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
        from recsys_lib.distributed.types import ShardingEnv

    tables = [EmbeddingBagConfig(num_embeddings=shape.rows, embedding_dim=shape.dim, name=f"t{i}",
                                 feature_names=[f"f{i}"]) for i in range(shape.tables)]
    ebc = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
    sharder = EmbeddingBagCollectionSharder(fused_params={
        "optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.01, "eps": 1e-8})
    plan = construct_module_sharding_plan(ebc, {t.name: row_wise(compute_kernel="fused") for t in tables},
                                          sharder=sharder, local_size=world, world_size=world, device_type="cpu")
    sharded = sharder.shard(ebc, plan, ShardingEnv.from_process_group(dist.group.WORLD), torch.device("cpu"))
    return sharded, KeyedJaggedTensor


def _step_times(rank: int, world: int, shape: Shape, libs: list[str], profile: str | None = None):
    """Per library, the step times of this rank. Libraries alternate step by step (ABBA order), so both
    see the same machine load; each step starts after a barrier."""
    import torch.distributed as dist

    models = {lib: _build(world, shape, lib) for lib in libs}
    batches = {lib: _batches(shape, 4, 1 + rank, kjt_cls) for lib, (_, kjt_cls) in models.items()}
    times: dict[str, list[float]] = {lib: [] for lib in libs}

    def step(lib: str, i: int) -> float:
        sharded = models[lib][0]
        dist.barrier()
        t0 = time.perf_counter()
        out = sharded(batches[lib][i % 4]).wait().values()
        out.sum().backward()
        return time.perf_counter() - t0

    for i in range(shape.warmup + shape.steps):
        order = libs if i % 2 == 0 else libs[::-1]
        for lib in order:
            t = step(lib, i)
            if i >= shape.warmup:
                times[lib].append(t)
    if profile is None:
        return times
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(4):
            step(profile, i)
    table = prof.key_averages().table(sort_by=os.environ.get("RW_PROFILE_SORT", "self_cpu_time_total"), row_limit=25)
    return times, table


def run(world: int, shape: Shape, libs: list[str], profile: str | None = None) -> dict[str, list[float]]:
    """Step times (s) of rank 0 per library."""
    from recsys_lib.distributed.test_utils import run_multiprocess

    per_rank = run_multiprocess(_step_times, world, shape, libs, profile, timeout_s=1800)
    times = per_rank[0]
    if profile is not None:
        times, table = times
        print(f"ws{world} {profile}: torch.profiler, 4 steps on rank 0 (self CPU time)\n{table}")
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rows", type=int, default=Shape.rows)
    p.add_argument("--steps", type=int, default=Shape.steps)
    p.add_argument("--compare", choices=["torchrec"], default=None)
    p.add_argument("--profile", choices=["recsys_lib", "torchrec"], default=None,
                   help="also print a torch.profiler table of 4 steps of this library (rank 0)")
    args = p.parse_args()
    shape = Shape(rows=args.rows, steps=args.steps)
    libs = ["recsys_lib"] + ([args.compare] if args.compare else [])
    if args.profile is not None and args.profile not in libs:
        p.error(f"--profile {args.profile} needs --compare {args.profile}")
    print(f"RW EBC train step: {shape.tables} tables x {shape.rows} rows x D={shape.dim}, batch {shape.batch}/rank, "
          f"bag length U[0, {shape.max_len}], fused row-wise Adagrad; median of {shape.steps} steps")
    for world in args.worlds:
        times = run(world, shape, libs, args.profile)
        res = {lib: statistics.median(t) for lib, t in times.items()}
        line = "  ".join(f"{lib} {t * 1e3:8.1f} ms" for lib, t in res.items())
        if args.compare:
            # paired: median over steps of the ratio of the two libraries' adjacent steps (robust to load drift)
            paired = statistics.median(o / m for o, m in zip(times[args.compare], times["recsys_lib"]))
            line += f"  ratio {res[args.compare] / res['recsys_lib']:.2f}x (paired {paired:.2f}x)"
        print(f"ws{world} RW  {line}", flush=True)


if __name__ == "__main__":
    main()
