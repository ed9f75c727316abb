#!/usr/bin/env python3
"""Installation check: trains a sharded DLRM for a few steps on random data.

Run it under a distributed launcher::

    torchrun --nproc_per_node=2 test_installation.py --cpu_only
    torchx run -s local_cwd dist.ddp -j 1x2 --script test_installation.py -- --cpu_only

(torchx's ``dist.ddp`` starts ``python`` from ``PATH``: activate the environment recsys_lib is installed in.)
``--cpu_only`` uses gloo on CPU; without it every rank uses ``cuda:<LOCAL_RANK>`` and NCCL.
What it exercises: ``EmbeddingBagCollection`` built on the ``meta`` device, ``DLRM``,
``DistributedModelParallel`` with no plan (so it asks the planner for one), the embedding tables'
in-backward (fused) optimizer plus a ``KeyedOptimizerWrapper`` over the dense parameters, and
``KeyedJaggedTensor.from_offsets_sync`` inputs. Rank 0 prints the plan and, at the end,
``Installation looks good!``.

The defaults are TorchRec's: 20 tables x 1,000,000 rows x dim 64 (5.1 GB of fp32 weights), batch 1024.
Smaller runs: ``--num_embeddings 10000 --batch_size 128`` (see ``--help``).
Only ``import recsys_lib`` differs from the same script written against TorchRec.
"""

import argparse
import os
import sys
import time
from typing import List, Optional, Tuple

import torch
import torch.distributed as dist

from recsys_lib import EmbeddingBagCollection, KeyedJaggedTensor
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.types import ShardingPlan
from recsys_lib.models.dlrm import DLRM
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter

SUCCESS_LINE = "Installation looks good!"


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Train a sharded DLRM for a few steps to check the installation.")
    p.add_argument("--cpu_only", action="store_true", help="gloo on CPU (default: NCCL on cuda:<LOCAL_RANK>)")
    p.add_argument("--num_tables", type=int, default=20, help="embedding tables, one feature each (default 20)")
    p.add_argument("--num_embeddings", type=int, default=1_000_000, help="rows per table (default 1,000,000)")
    p.add_argument("--embedding_dim", type=int, default=64, help="embedding dimension (default 64)")
    p.add_argument("--batch_size", type=int, default=1024, help="examples per rank and step (default 1024)")
    p.add_argument("--num_iterations", type=int, default=5, help="training steps (default 5)")
    p.add_argument("--max_ids_per_feature", type=int, default=8, help="ids per example and feature: 0..this")
    p.add_argument("--seed", type=int, default=0, help="base seed; rank r uses seed + r for its data")
    args = p.parse_args(argv)
    for name in ("num_tables", "num_embeddings", "embedding_dim", "batch_size", "num_iterations"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.max_ids_per_feature < 0:
        p.error(f"--max_ids_per_feature must be >= 0, got {args.max_ids_per_feature}")
    return args


def setup(cpu_only: bool) -> Tuple[torch.device, int, int]:
    """Joins the process group the launcher describes; returns (device, rank, world size)."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        sys.exit("test_installation.py: run it under torchrun or torchx (RANK / WORLD_SIZE are not set), e.g.\n"
                 "    torchrun --nproc_per_node=2 test_installation.py --cpu_only")
    if cpu_only:
        device, backend = torch.device("cpu"), "gloo"
    else:
        if not torch.cuda.is_available():
            sys.exit("test_installation.py: CUDA is not available; pass --cpu_only to check the CPU build")
        device, backend = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))), "nccl"
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend)
    return device, dist.get_rank(), dist.get_world_size()


def build_model(args: argparse.Namespace, device: torch.device) -> DLRM:
    tables = [
        EmbeddingBagConfig(
            name=f"table_{i}",
            embedding_dim=args.embedding_dim,
            num_embeddings=args.num_embeddings,
            feature_names=[f"feature_{i}"],
        )
        for i in range(args.num_tables)
    ]
    return DLRM(
        embedding_bag_collection=EmbeddingBagCollection(tables=tables, device=torch.device("meta")),
        dense_in_features=16,
        dense_arch_layer_sizes=[32, args.embedding_dim],
        over_arch_layer_sizes=[64, 1],
        dense_device=device,
    )


def random_batch(
    args: argparse.Namespace, generator: torch.Generator, device: torch.device
) -> Tuple[torch.Tensor, KeyedJaggedTensor, torch.Tensor]:
    """Dense features, a KJT of random ids (a random count per example and feature), and 0/1 labels."""
    b, f = args.batch_size, args.num_tables
    dense = torch.rand(b, 16, generator=generator)
    lengths = torch.randint(0, args.max_ids_per_feature + 1, (f * b,), generator=generator)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(lengths, 0)])
    values = torch.randint(0, args.num_embeddings, (int(offsets[-1]),), generator=generator)
    kjt = KeyedJaggedTensor.from_offsets_sync(
        keys=[f"feature_{i}" for i in range(f)], values=values.to(device), offsets=offsets.to(device)
    )
    labels = torch.randint(0, 2, (b,), generator=generator).float()
    return dense.to(device), kjt, labels.to(device)


def describe_plan(plan: ShardingPlan) -> List[str]:
    """One line per sharded table: ``module.table: sharding_type compute_kernel ranks``."""
    lines = []
    for module_fqn, module_plan in plan.plan.items():
        for table, ps in module_plan.items():
            lines.append(f"  {module_fqn}.{table}: {ps.sharding_type} {ps.compute_kernel} ranks={ps.ranks}")
    return lines


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    device, rank, world_size = setup(args.cpu_only)
    start = time.perf_counter()

    model = DistributedModelParallel(module=build_model(args, device), device=device)  # no plan: the planner's
    if rank == 0:
        print(f"plan ({world_size} ranks, {device.type}):", *describe_plan(model.plan), sep="\n", flush=True)

    # sharded tables train with their in-backward optimizer; everything else with this one
    dense_optimizer = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(model.named_parameters())),
        lambda params: torch.optim.SGD(params, lr=0.01),
    )
    loss_fn = torch.nn.BCEWithLogitsLoss()
    generator = torch.Generator().manual_seed(args.seed + rank)
    for step in range(args.num_iterations):
        dense, kjt, labels = random_batch(args, generator, device)
        logits = model(dense, kjt).squeeze(-1)
        loss = loss_fn(logits, labels)
        dense_optimizer.zero_grad()
        loss.backward()
        dense_optimizer.step()
        if not torch.isfinite(loss):
            raise RuntimeError(f"rank {rank}: loss is {loss.item()} at step {step}")
        # one write per line, so that lines of different ranks sharing a terminal do not interleave
        print(f"rank {rank} step {step}: loss {loss.item():.4f}\n", end="", flush=True)

    dist.barrier()
    if rank == 0:
        print(f"{args.num_iterations} steps on {world_size} ranks in {time.perf_counter() - start:.1f} s")
        print(SUCCESS_LINE, flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
