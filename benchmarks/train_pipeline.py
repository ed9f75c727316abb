"""DLRM training throughput: plain loop vs TrainPipelineSparseDist, world 1 and 2, recsys_lib vs TorchRec.

Model: DLRM (dense 512-256-64, over 512-512-256-1) over 26 tables x ``--rows`` x D=64, table-wise round-robin
plan, fused row-wise Adagrad tables + Adagrad dense (DMP + DDP), per-rank batch ``--batch`` with bag lengths
uniform in [0, 2 * ``--mean_ids``]. Per world size, persistent gloo ranks (one intra-op thread each) hold all four
configurations (library x loop) and step them round robin, one step each, timed between barriers (so the time
is the slowest rank's and machine load hits every configuration alike); medians over ``--steps`` after
``--warmup``. Next to the wall time, each rank's CPU time per step (``time.process_time``: all its threads,
gloo's included) and its main thread's (``time.thread_time``): on a loaded machine the wall time follows the
load, the CPU time is the work. ``--profile DIR`` then runs ``--profile_steps`` more steps of each
configuration under ``torch.profiler``: the time the main thread sat in awaitables' ``wait()`` (blocked on
collectives), and rank 0's Chrome trace and operator table per configuration in DIR.

    .venv/bin/python benchmarks/train_pipeline.py                                     # recsys_lib only
    .venv-compare/bin/python benchmarks/train_pipeline.py --compare torchrec          # + TorchRec 1.8.0
    .venv/bin/python benchmarks/train_pipeline.py --rows 10000 --batch 512 --steps 10  # quick
    .venv-compare/bin/python benchmarks/train_pipeline.py --compare torchrec --worlds 2 --profile /tmp/tp  # + traces

Measured numbers: benchmarks/README.md (train pipeline section).
"""

import argparse
import importlib
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _batches(lib, n, batch, rows, mean_ids, seed):
    Batch = importlib.import_module(f"{lib}.datasets.utils").Batch
    KJT = importlib.import_module(f"{lib}.sparse.jagged_tensor").KeyedJaggedTensor
    g = torch.Generator().manual_seed(seed)
    keys = [f"cat_{i}" for i in range(26)]
    out = []
    for _ in range(n):
        lengths = torch.randint(0, 2 * mean_ids + 1, (26 * batch,), generator=g)
        values = torch.randint(0, rows, (int(lengths.sum()),), generator=g)
        out.append(Batch(dense_features=torch.rand(batch, 13, generator=g),
                         sparse_features=KJT(keys=keys, values=values, lengths=lengths),
                         labels=torch.randint(0, 2, (batch,), generator=g).float()))
    return out


def _model(lib, rows, world):
    m = lambda name: importlib.import_module(f"{lib}.{name}")  # noqa: E731
    cfg = m("modules.embedding_configs")
    tables = [cfg.EmbeddingBagConfig(name=f"t{i}", embedding_dim=64, num_embeddings=rows, feature_names=[f"cat_{i}"])
              for i in range(26)]
    ebc = m("modules.embedding_modules").EmbeddingBagCollection(tables=tables, device=torch.device("meta"))
    dlrm = m("models.dlrm")
    model = dlrm.DLRMTrain(dlrm.DLRM(embedding_bag_collection=ebc, dense_in_features=13,
                                     dense_arch_layer_sizes=[512, 256, 64], over_arch_layer_sizes=[512, 512, 256, 1]))
    m("optim.apply_optimizer_in_backward").apply_optimizer_in_backward(
        m("optim.rowwise_adagrad").RowWiseAdagrad, model.model.sparse_arch.parameters(), {"lr": 0.01})
    sp = m("distributed.sharding_plan")
    gens = {f"t{i}": sp.table_wise(rank=i % world) for i in range(26)}
    plan = m("distributed.types").ShardingPlan({"model.sparse_arch.embedding_bag_collection": sp.construct_module_sharding_plan(
        model.model.sparse_arch.embedding_bag_collection, gens, world_size=world, device_type="cpu")})
    dmp = m("distributed.model_parallel").DistributedModelParallel(model, device=torch.device("cpu"), plan=plan)
    keyed = m("optim.keyed")
    dense = keyed.KeyedOptimizerWrapper(dict(m("optim.optimizers").in_backward_optimizer_filter(dmp.named_parameters())),
                                        lambda ps: torch.optim.Adagrad(ps, lr=0.01))
    return dmp, keyed.CombinedOptimizer([dmp.fused_optimizer, dense])


def _stepper(lib, loop, args, world, rank):
    """One configuration on this rank: a fresh DMP and a function running one training step."""
    torch.manual_seed(0)
    dmp, opt = _model(lib, args.rows, world)
    n = args.warmup + args.steps + (args.profile_steps if args.profile else 0)
    batches = _batches(lib, n, args.batch, args.rows, args.mean_ids, seed=rank)
    it = iter(batches)
    if loop == "pipeline":
        pipeline = importlib.import_module(f"{lib}.distributed.train_pipeline").TrainPipelineSparseDist(
            dmp, opt, torch.device("cpu"))
        return lambda: pipeline.progress(it)

    def step():
        opt.zero_grad()
        loss, _ = dmp(next(it))
        loss.backward()
        opt.step()

    return step


def _wait_ms(prof):
    """Wall ms the main thread spent inside awaitables' ``wait()`` (blocked on collectives, plus the work
    done on the received data) in a profile; nested waits count once (outermost span)."""
    total = 0.0
    for e in prof.events():
        if "wait() ##" not in e.name:
            continue
        parent = e.cpu_parent
        while parent is not None and "wait() ##" not in parent.name:
            parent = parent.cpu_parent
        if parent is None:
            total += e.cpu_time_total
    return total / 1e3


def _profile(steppers, args, rank):
    """``--profile_steps`` steps of each configuration under ``torch.profiler``: blocked time per step, and
    (rank 0) a Chrome trace and an operator table per configuration in ``--profile``."""
    from torch.profiler import ProfilerActivity, profile

    out = {}
    for c, step in steppers.items():
        dist.barrier()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.profile_steps):
                step()
        dist.barrier()
        out[c] = _wait_ms(prof) / args.profile_steps
        if rank == 0:
            name = f"{c[0]}_{c[1]}_ws{dist.get_world_size()}"
            os.makedirs(args.profile, exist_ok=True)
            prof.export_chrome_trace(os.path.join(args.profile, name + ".json"))
            with open(os.path.join(args.profile, name + ".txt"), "w") as f:
                f.write(prof.key_averages().table(sort_by="cpu_time_total", row_limit=40))
    return out


def _rank(rank, world, port, configs, args, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    steppers = {c: _stepper(c[0], c[1], args, world, rank) for c in configs}
    # Per configuration and step: wall s (slowest rank: between barriers), this process's CPU s (all its
    # threads, gloo's included) and the main thread's CPU s.
    times = {c: {"wall": [], "cpu": [], "main": []} for c in configs}
    # Round robin over the configurations, one step each: machine load hits all of them alike.
    for i in range(args.warmup + args.steps):
        for c, step in steppers.items():
            dist.barrier()
            start, cpu, main = time.perf_counter(), time.process_time(), time.thread_time()
            step()
            cpu, main = time.process_time() - cpu, time.thread_time() - main
            dist.barrier()  # the step is done on every rank
            if i >= args.warmup:
                times[c]["wall"].append(time.perf_counter() - start)
                times[c]["cpu"].append(cpu)
                times[c]["main"].append(main)
    medians = {c: {k: statistics.median(v) for k, v in t.items()} for c, t in times.items()}
    if args.profile:
        for c, ms in _profile(steppers, args, rank).items():
            medians[c]["wait"] = ms / 1e3
    gathered = [None] * world
    dist.all_gather_object(gathered, medians)
    if rank == 0:
        queue.put(gathered)
    dist.destroy_process_group()


def run(world, configs, args):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, world, port, configs, args, queue)) for r in range(world)]
    for p in procs:
        p.start()
    per_rank = queue.get(timeout=3600)
    for p in procs:
        p.join()
    return per_rank


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--compare", choices=["torchrec"], default=None)
    p.add_argument("--worlds", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=2048)
    p.add_argument("--mean_ids", type=int, default=1, help="mean ids per bag (Criteo: 1)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--profile", default=None, help="folder: also profile each configuration (torch.profiler)")
    p.add_argument("--profile_steps", type=int, default=3)
    args = p.parse_args()
    libs = ["recsys_lib"] + ([args.compare] if args.compare else [])
    print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for world in args.worlds:
        configs = [(lib, loop) for lib in libs for loop in ("plain", "pipeline")]
        per_rank = run(world, configs, args)
        for c in configs:
            lib, loop = c
            wall = per_rank[0][c]["wall"]
            results[(lib, world, loop)] = wall
            cpu = "/".join(f"{r[c]['cpu'] * 1e3:.0f}" for r in per_rank)
            main_cpu = "/".join(f"{r[c]['main'] * 1e3:.0f}" for r in per_rank)
            wait = ("  blocked in wait() " + "/".join(f"{r[c]['wait'] * 1e3:.0f}" for r in per_rank) + " ms"
                    if "wait" in per_rank[0][c] else "")
            print(f"{lib:<10} world {world} {loop:<8} wall {wall * 1e3:7.1f} ms/step  "
                  f"{args.batch * world / wall:9,.0f} samples/s  cpu/rank {cpu} ms  main thread {main_cpu} ms{wait}",
                  flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    print()
    for world in args.worlds:
        ours = results[("recsys_lib", world, "pipeline")]
        line = f"world {world}: pipeline vs our plain loop {results[('recsys_lib', world, 'plain')] / ours:.2f}x"
        if args.compare:
            line += f"; ours vs {args.compare}'s pipeline {results[(args.compare, world, 'pipeline')] / ours:.2f}x"
            line += f"; {args.compare}'s pipeline vs its plain loop " \
                    f"{results[(args.compare, world, 'plain')] / results[(args.compare, world, 'pipeline')]:.2f}x"
        print(line)


if __name__ == "__main__":
    main()
