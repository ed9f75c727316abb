"""Train a sharded DLRM on built-in random Criteo-shaped data: one process, or several under torchrun (gloo, CPU).

    python examples/dlrm/train.py                                  # one process (a 1-rank gloo group)
    torchrun --nproc_per_node=2 examples/dlrm/train.py             # 2 processes, tables sharded by the planner

One intra-op thread per process by default (``--threads``, as torchrun's OMP_NUM_THREADS=1): the steps
are many small ops, and on a small or busy machine extra threads mostly wait for each other.

The flow a TorchRec user writes: the embedding tables are declared on device "meta" (nothing allocated),
their optimizer (RowWiseAdagrad) is attached to run inside backward, the planner picks a sharding plan on
rank 0 and broadcasts it, and DistributedModelParallel shards the tables (allocating only this rank's
shards) and wraps the dense layers in DDP. Sparse updates happen in backward (``model.fused_optimizer``);
dense ones through a KeyedOptimizerWrapper; both are driven through one CombinedOptimizer.

RandomRecDataset (as TorchRec's) cycles through 10 generated batches, so the loss falls as the model
memorises them: a quick sign that sparse and dense updates both work, not a quality metric.
The run ends with a summary: throughput, first/last loss, each table's sharding, and the checkpoint path.
The checkpoint holds the *unsharded* model state dict (sharded tables gathered on rank 0), with the keys of
a plain ``DLRMTrain`` model, so ``DLRMTrain(DLRM(...)).load_state_dict(torch.load(path))`` works anywhere.
"""

import argparse
import dataclasses
import os
import socket
import textwrap
import time
import warnings
from collections import Counter
from typing import Any, Dict, List

import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor
from tqdm import tqdm

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES
from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.distributed.comm import get_local_size
from recsys_lib.distributed.model_parallel import DistributedModelParallel, get_default_sharders
from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
from recsys_lib.models.dlrm import DLRM, DLRMTrain
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad


@dataclasses.dataclass
class Config:
    batch_size: int = 256  # per rank
    num_batches: int = 40
    num_embeddings: int = 10_000  # rows per table
    embedding_dim: int = 16
    dense_arch_layer_sizes: List[int] = dataclasses.field(default_factory=lambda: [64, 16])
    over_arch_layer_sizes: List[int] = dataclasses.field(default_factory=lambda: [64, 32, 1])
    ids_per_feature: int = 3
    learning_rate: float = 0.01  # sparse (RowWiseAdagrad, in backward) and dense (Adagrad)
    seed: int = 0
    threads: int = 1  # intra-op threads per process, as torchrun sets them; 0: torch's default (all cores)
    out_dir: str = "out"


def parse_args() -> Config:
    cfg = Config()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(cfg):
        default = getattr(cfg, f.name)
        if isinstance(default, list):
            p.add_argument(f"--{f.name}", type=int, nargs="+", default=default)
        else:
            p.add_argument(f"--{f.name}", type=type(default), default=default)
    cfg = Config(**vars(p.parse_args()))
    if cfg.num_batches < 1 or cfg.batch_size < 1:
        p.error(f"--num_batches and --batch_size must be >= 1, got {cfg.num_batches} and {cfg.batch_size}")
    if cfg.dense_arch_layer_sizes[-1] != cfg.embedding_dim:
        p.error(f"DLRM needs the last --dense_arch_layer_sizes ({cfg.dense_arch_layer_sizes[-1]}) to equal "
                f"--embedding_dim ({cfg.embedding_dim})")
    return cfg


def init_process_group() -> None:
    """gloo from torchrun's environment; without torchrun, a 1-rank group on a free local port."""
    if "WORLD_SIZE" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK="0", WORLD_SIZE="1",
                          LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    dist.init_process_group("gloo")


def gather_state_dict(model: DistributedModelParallel) -> Dict[str, torch.Tensor]:
    """The unsharded state dict on rank 0 (empty elsewhere): every ShardedTensor gathered whole.

    A collective: every rank must call it, and every rank walks the keys in the same order.
    """
    rank = dist.get_rank()
    full: Dict[str, torch.Tensor] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch: "ShardedTensor is deprecated, use DTensor"
        for key, value in model.state_dict().items():
            if isinstance(value, ShardedTensor):
                out = torch.empty(value.size(), dtype=value.dtype) if rank == 0 else None
                value.gather(dst=0, out=out)  # out: [num_embeddings, embedding_dim] on rank 0
                if rank == 0:
                    full[key] = out
            elif rank == 0:
                full[key] = value.detach().clone()  # dense layers and data-parallel tables: replicated
    return full


def describe_plan(plan: Dict[str, Any]) -> List[str]:
    """Per sharding type, its tables and their ranks: ``table_wise (20): t_cat_0@r0 t_cat_1@r1 ...``."""
    by_type: Dict[str, List[str]] = {}
    for module_plan in plan.values():
        for table, ps in module_plan.items():
            ranks = sorted(set(ps.ranks or []))
            where = "@all" if ps.sharding_type == "data_parallel" else "@" + "+".join(f"r{r}" for r in ranks)
            by_type.setdefault(ps.sharding_type, []).append(f"{table}{where}")
    lines: List[str] = []
    for t, ts in sorted(by_type.items()):
        lines += textwrap.wrap(f"{t} ({len(ts)}): {' '.join(ts)}", width=110, subsequent_indent="    ")
    return lines


def main() -> None:
    cfg = parse_args()
    setup_start = time.perf_counter()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    init_process_group()
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(cfg.seed)  # same dense initial weights on every rank (DDP also broadcasts rank 0's)

    # 26 tables, one per Criteo categorical feature; on "meta": DMP allocates only this rank's shards.
    tables = [
        EmbeddingBagConfig(
            name=f"t_{name}", embedding_dim=cfg.embedding_dim, num_embeddings=cfg.num_embeddings, feature_names=[name]
        )
        for name in DEFAULT_CAT_NAMES
    ]
    train_model = DLRMTrain(
        DLRM(
            embedding_bag_collection=EmbeddingBagCollection(tables=tables, device=torch.device("meta")),
            dense_in_features=len(DEFAULT_INT_NAMES),
            dense_arch_layer_sizes=cfg.dense_arch_layer_sizes,
            over_arch_layer_sizes=cfg.over_arch_layer_sizes,
        )
    )
    # The sharders read this to fuse RowWiseAdagrad into the embedding kernels (updates run in backward).
    apply_optimizer_in_backward(RowWiseAdagrad, train_model.model.sparse_arch.parameters(), {"lr": cfg.learning_rate})

    planner = EmbeddingShardingPlanner(
        topology=Topology(world_size=world_size, compute_device="cpu", local_world_size=get_local_size()),
        batch_size=cfg.batch_size,
        debug=False,
    )
    plan = planner.collective_plan(train_model, get_default_sharders(), dist.GroupMember.WORLD)
    model = DistributedModelParallel(module=train_model, device=torch.device("cpu"), plan=plan)

    dense_optimizer = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(model.named_parameters())),
        lambda params: torch.optim.Adagrad(params, lr=cfg.learning_rate),
    )
    optimizer = CombinedOptimizer([model.fused_optimizer, dense_optimizer])

    # Each rank draws different batches: the seed is offset by the rank.
    data = RandomRecDataset(
        keys=DEFAULT_CAT_NAMES,
        batch_size=cfg.batch_size,
        hash_size=cfg.num_embeddings,
        ids_per_feature=cfg.ids_per_feature,
        num_dense=len(DEFAULT_INT_NAMES),
        manual_seed=cfg.seed + rank,
        num_batches=cfg.num_batches,
    )

    setup = time.perf_counter() - setup_start
    model.train()
    losses: List[float] = []
    start = time.perf_counter()
    for batch in tqdm(data, total=cfg.num_batches, disable=rank != 0, desc="train", unit="batch"):
        # batch.dense_features: [B, 13]; batch.sparse_features: KJT with 26 keys; batch.labels: [B]
        optimizer.zero_grad()
        loss, (_, logits, labels) = model(batch)  # loss: scalar; logits, labels: [B]
        loss.backward()  # sparse tables are updated here (fused RowWiseAdagrad)
        optimizer.step()  # dense layers (Adagrad); the fused part's step is a no-op
        losses.append(loss.item())
    elapsed = time.perf_counter() - start

    state = gather_state_dict(model)
    if rank == 0:
        os.makedirs(cfg.out_dir, exist_ok=True)
        path = os.path.join(cfg.out_dir, "dlrm_random.pt")
        tmp = path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees a half-written checkpoint
        samples = cfg.num_batches * cfg.batch_size * world_size
        types = Counter(ps.sharding_type for mp in plan.plan.values() for ps in mp.values())
        lines = [
            f"\nDLRM on random data: {world_size} process(es), {cfg.num_batches} steps x {cfg.batch_size} per rank",
            f"  throughput  {samples / elapsed:,.0f} samples/s ({elapsed:.1f} s; setup: model, plan, sharding {setup:.1f} s)",
            f"  loss        first {losses[0]:.4f}  last {losses[-1]:.4f}  (rank 0's batches)",
            f"  plan        {', '.join(f'{t}: {n}' for t, n in sorted(types.items()))} tables",
        ]
        lines += [f"    {line}" for line in describe_plan(plan.plan)]
        lines.append(f"  checkpoint  {path} ({len(state)} tensors, unsharded: sharded tables gathered on rank 0)")
        print("\n".join(lines), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
