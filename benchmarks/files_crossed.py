"""How many recsys_lib source files one row-wise sharded EBC forward crosses (issue 18).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/files_crossed.py [--sharding row_wise] [--list]

Builds a small ``EmbeddingBagCollection`` (2 tables), shards it with ``DistributedModelParallel`` at world size 1
(gloo on 127.0.0.1) with every table planned by the sharding helper named on the command line, runs one warm-up
forward, then records with ``sys.setprofile`` every Python function entered during one more forward up to the
``KeyedTensor`` (``model(kjt)`` then ``.wait()`` if lazy). Prints the number of distinct files and folders under
``recsys_lib/`` (``--list``: the files too).
"""

import argparse
import os
import socket
import sys
from collections import Counter
from typing import Any, Set

import torch
import torch.distributed as dist


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(sharding: str) -> Any:
    from recsys_lib.distributed.model_parallel import DistributedModelParallel
    from recsys_lib.distributed import sharding_plan
    from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection

    tables = [EmbeddingBagConfig(name=f"t{i}", embedding_dim=8, num_embeddings=100, feature_names=[f"f{i}"])
              for i in range(2)]
    ebc = EmbeddingBagCollection(tables=tables)
    helper = getattr(sharding_plan, sharding)
    gen = helper(rank=0) if sharding == "table_wise" else helper()
    plan = ShardingPlan({"": sharding_plan.construct_module_sharding_plan(ebc, {t.name: gen for t in tables})})
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    return DistributedModelParallel(ebc, env=env, plan=plan, device=torch.device("cpu"))


def _batch() -> Any:
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    return KeyedJaggedTensor.from_lengths_sync(
        keys=["f0", "f1"], values=torch.tensor([1, 2, 3, 50, 60, 99]), lengths=torch.tensor([2, 1, 2, 1])
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sharding", default="row_wise", help="a sharding_plan helper taking no table shape")
    parser.add_argument("--list", action="store_true", help="print the files")
    args = parser.parse_args()

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        import recsys_lib

        root = os.path.dirname(os.path.abspath(recsys_lib.__file__))
        model = _model(args.sharding)
        out = model(_batch())
        if hasattr(out, "wait"):
            out.wait()

        seen: Set[str] = set()

        def record(frame: Any, event: str, _arg: Any) -> None:
            if event == "call":
                seen.add(frame.f_code.co_filename)

        kjt = _batch()
        sys.setprofile(record)
        try:
            out = model(kjt)
            if hasattr(out, "wait"):
                out = out.wait()
        finally:
            sys.setprofile(None)
        assert type(out).__name__ == "KeyedTensor", type(out)
        files = sorted(os.path.relpath(f, root) for f in seen if os.path.abspath(f).startswith(root + os.sep))
        folders = Counter(os.path.dirname(f) or "." for f in files)
        print(f"{args.sharding}: {len(files)} recsys_lib files in {len(folders)} folders during one DMP forward")
        if args.list:
            for f in files:
                print("  ", f)
            for d, n in sorted(folders.items()):
                print(f"  [{d}] {n}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
