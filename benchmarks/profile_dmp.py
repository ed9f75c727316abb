"""Where a DMP train step spends its time: torch.profiler + cProfile, one library, TW/RW x world 1/2 (issue 19).

    PYTHONPATH=$PWD .venv-compare/bin/python benchmarks/profile_dmp.py --lib recsys_lib --sharding tw --world 1
    PYTHONPATH=$PWD .venv-compare/bin/python benchmarks/profile_dmp.py --lib torchrec --sharding rw --world 2

Same model and batch as ``cases/dmp.py`` (26 tables x 100k x D=64, batch 2048 per rank, fused row-wise Adagrad),
one intra-op thread per rank. Rank 0 prints (a) the step time (median of ``--steps``), (b) a phase table: the
profiler's self CPU time summed into buckets (lookup forward, lookup backward + fused update, collectives and
their wait, KJT ops, other aten, Python = wall minus all aten time), (c) the top ``--top`` aten ops and
(d) with ``--cprofile`` the top Python functions by cumulative time.
"""

import argparse
import cProfile
import io
import os
import pstats
import socket
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

# (bucket, substrings of the profiler's op names), first match wins
BUCKETS = [
    ("gloo wait", ("wait", "gloo:", "barrier")),
    ("collectives", ("all_to_all", "alltoall", "all_gather", "allgather", "reduce_scatter", "broadcast",
                     "all_reduce", "allreduce", "c10d::")),
    # FBGEMM's fused backward, or recsys_lib's CPU fast path (_tbe/cpu_fused.py: sort, per-row sums, sparse row add)
    ("lookup bwd + update", ("backward_codegen", "split_embedding_backward", "_embedding_bag_backward",
                             "embedding_bag_dense_backward", "embedding_bag_sparse_backward", "rowwise_adagrad",
                             "index_add", "_fused", "sort", "unique", "aten::add", "sparse_coo", "aten::mul",
                             "aten::sum", "aten::sqrt", "index_copy", "repeat_interleave", "aten::div")),
    # note: recsys_lib's fast path also sums gradients with embedding_bag in backward (counted here)
    ("lookup fwd", ("split_embedding_codegen_forward", "embedding_bag", "forward_cpu", "_embedding_bag",
                    "index_select")),
    ("bucketize / KJT ops", ("bucketize", "permute", "cumsum", "asynchronous_complete_cumsum", "segment",
                             "repeat_interleave", "aminmax", "min", "max", "split", "narrow")),
    ("copies / cat", ("cat", "copy_", "clone", "contiguous", "to", "fill_", "zero_", "empty")),
]


def _bucket(name: str) -> str:
    low = name.lower()
    for bucket, keys in BUCKETS:
        if any(k in low for k in keys):
            return bucket
    return "other aten"


def _worker(rank: int, world: int, port: int, lib: str, sharding: str, steps: int, top: int, use_cprofile: bool,
            out_q) -> None:
    import torch.distributed as dist
    from torch.profiler import ProfilerActivity, profile

    from benchmarks.cases.dmp import _batch, _build_model

    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=600))
    dmp, KJT = _build_model(lib, sharding, world)
    keys, lengths, values, kwargs = _batch(rank, False)
    grad = torch.randn(2048, 26 * 64, generator=torch.Generator().manual_seed(rank))

    def step(split=None):
        t0 = time.perf_counter()
        out = dmp(KJT(keys=keys, values=values, lengths=lengths, **kwargs))
        t1 = time.perf_counter()
        out.values().backward(grad)
        if split is not None:
            split.append((t1 - t0, time.perf_counter() - t1))

    for _ in range(3):
        step()
    times, split = [], []
    for _ in range(steps):
        dist.barrier()
        t0 = time.perf_counter()
        step(split)
        times.append(time.perf_counter() - t0)
    import resource

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # before the profiler adds its own
    report = []
    fwd = statistics.median(f for f, _ in split) * 1e3
    bwd = statistics.median(b for _, b in split) * 1e3
    report.append(f"{lib} {sharding} ws{world}: step median {statistics.median(times) * 1e3:.1f} ms "
                  f"(min {min(times) * 1e3:.1f}) over {steps}; forward (input dist + lookup + output dist) "
                  f"{fwd:.1f} ms, backward (output-dist backward + fused update) {bwd:.1f} ms")
    n_prof = 3
    dist.barrier()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n_prof):
            step()
    wall_us = (time.perf_counter() - t0) * 1e6 / n_prof
    ka = prof.key_averages()
    buckets = {}
    aten_total = 0.0
    for e in ka:
        if e.key.startswith("autograd::") or e.key.startswith("ProfilerStep"):
            continue
        self_us = e.self_cpu_time_total / n_prof
        aten_total += self_us
        b = _bucket(e.key)
        buckets[b] = buckets.get(b, 0.0) + self_us
    buckets["python / dispatch (wall - ops)"] = max(0.0, wall_us - aten_total)
    report.append(f"  per step under the profiler: {wall_us / 1e3:.1f} ms")
    for b, us in sorted(buckets.items(), key=lambda kv: -kv[1]):
        report.append(f"  {b:32} {us / 1e3:8.1f} ms  {100 * us / wall_us:5.1f} %")
    report.append(ka.table(sort_by="self_cpu_time_total", row_limit=top))
    if use_cprofile:
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(n_prof):
            step()
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
        report.append(s.getvalue())
    report.append(f"  peak RSS rank {rank} (timed steps, before profiling): {rss_mib:.0f} MiB")
    if rank == 0:
        out_q.put("\n".join(report))
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    import multiprocessing as mp

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", choices=["recsys_lib", "torchrec"], default="recsys_lib")
    p.add_argument("--sharding", choices=["tw", "rw"], default="tw")
    p.add_argument("--world", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--cprofile", action="store_true")
    args = p.parse_args()
    ctx = mp.get_context("spawn")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, args.world, port, args.lib, args.sharding, args.steps, args.top,
                                               args.cprofile, q)) for r in range(args.world)]
    for pr in procs:
        pr.start()
    print(q.get())
    for pr in procs:
        pr.join()


if __name__ == "__main__":
    main()
