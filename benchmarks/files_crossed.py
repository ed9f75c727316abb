"""How many library source files one row-wise sharded EBC forward crosses (issue 18).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/files_crossed.py [--sharding row_wise] [--world-size 2] [--list]
    PYTHONPATH=$PWD .venv-compare/bin/python benchmarks/files_crossed.py --library torchrec   # the same on TorchRec

Builds a small ``EmbeddingBagCollection`` (2 tables), shards it with ``DistributedModelParallel`` on gloo
(127.0.0.1; world size 1 by default, where the collectives are skipped, or ``--world-size`` spawned ranks) with
every table planned by the sharding helper named on the command line, runs one warm-up forward, then records on
rank 0 with ``sys.setprofile`` every Python function entered during one more forward up to the ``KeyedTensor``
(``model(kjt)`` then ``.wait()`` if lazy). Prints the number of distinct files and folders under the library's
package (``--list``: the files too).
"""

import argparse
import importlib
import os
import socket
import sys
from collections import Counter
from typing import Any, List, Set

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(lib: str, sharding: str, rank: int) -> Any:
    mp_mod = importlib.import_module(f"{lib}.distributed.model_parallel")
    sharding_plan = importlib.import_module(f"{lib}.distributed.sharding_plan")
    types = importlib.import_module(f"{lib}.distributed.types")
    configs = importlib.import_module(f"{lib}.modules.embedding_configs")
    modules = importlib.import_module(f"{lib}.modules.embedding_modules")

    tables = [configs.EmbeddingBagConfig(name=f"t{i}", embedding_dim=8, num_embeddings=100, feature_names=[f"f{i}"])
              for i in range(2)]
    torch.manual_seed(0)
    ebc = modules.EmbeddingBagCollection(tables=tables)
    helper = getattr(sharding_plan, sharding)
    gen = helper(rank=0) if sharding == "table_wise" else helper()
    world = dist.get_world_size()
    plan = types.ShardingPlan({"": sharding_plan.construct_module_sharding_plan(
        ebc, {t.name: gen for t in tables}, local_size=world, world_size=world, device_type="cpu")})
    env = types.ShardingEnv.from_process_group(dist.group.WORLD)
    return mp_mod.DistributedModelParallel(ebc, env=env, plan=plan, device=torch.device("cpu"))


def _batch(lib: str) -> Any:
    jt = importlib.import_module(f"{lib}.sparse.jagged_tensor")
    return jt.KeyedJaggedTensor.from_lengths_sync(
        keys=["f0", "f1"], values=torch.tensor([1, 2, 3, 50, 60, 99]), lengths=torch.tensor([2, 1, 2, 1])
    )


def _run(rank: int, world: int, port: int, args: argparse.Namespace) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        root = os.path.dirname(os.path.abspath(importlib.import_module(args.library).__file__))
        model = _model(args.library, args.sharding, rank)
        out = model(_batch(args.library))
        if hasattr(out, "wait"):
            out.wait()

        seen: Set[str] = set()

        def record(frame: Any, event: str, _arg: Any) -> None:
            if event == "call":
                seen.add(frame.f_code.co_filename)

        kjt = _batch(args.library)
        dist.barrier()
        sys.setprofile(record)
        try:
            out = model(kjt)
            if hasattr(out, "wait"):
                out = out.wait()
        finally:
            sys.setprofile(None)
        assert type(out).__name__ == "KeyedTensor", type(out)
        if rank == 0:
            files: List[str] = sorted(
                os.path.relpath(f, root) for f in seen if os.path.abspath(f).startswith(root + os.sep))
            folders = Counter(os.path.dirname(f) or "." for f in files)
            print(f"{args.sharding}: {len(files)} {args.library} files in {len(folders)} folders during one DMP "
                  f"forward (world size {world})")
            if args.list:
                for f in files:
                    print("  ", f)
                for d, n in sorted(folders.items()):
                    print(f"  [{d}] {n}")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharding", default="row_wise", help="a sharding_plan helper taking no table shape")
    parser.add_argument("--world-size", type=int, default=1, help="gloo ranks (1: in this process)")
    parser.add_argument("--library", default="recsys_lib", choices=["recsys_lib", "torchrec"])
    parser.add_argument("--list", action="store_true", help="print the files")
    args = parser.parse_args()
    port = _free_port()
    if args.world_size == 1:
        _run(0, 1, port, args)
    else:
        mp.spawn(_run, args=(args.world_size, port, args), nprocs=args.world_size, join=True)


if __name__ == "__main__":
    main()
