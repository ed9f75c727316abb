"""Train DLRM on built-in random Criteo-shaped data: one process, or several under torchrun (gloo on CPU).

    python examples/dlrm/train.py                                  # one process
    torchrun --nproc_per_node=2 examples/dlrm/train.py             # 2 processes, gloo, data parallel

Each rank reads its own stream of random batches (26 sparse features named like Criteo's, 13 dense),
runs DLRM forward/backward and steps a keyed optimizer; gradients are averaged across ranks.
The run ends with a summary: throughput, first/last loss, and where the checkpoint went.
"""

import argparse
import dataclasses
import os
import time
from typing import List

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES
from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.models.dlrm import DLRM, DLRMTrain
from recsys_lib.optim.keyed import KeyedOptimizerWrapper


@dataclasses.dataclass
class Config:
    batch_size: int = 256  # per rank
    num_batches: int = 40
    num_embeddings: int = 10_000  # rows per table
    embedding_dim: int = 16
    dense_arch_layer_sizes: List[int] = dataclasses.field(default_factory=lambda: [64, 16])
    over_arch_layer_sizes: List[int] = dataclasses.field(default_factory=lambda: [64, 32, 1])
    ids_per_feature: int = 3
    learning_rate: float = 0.05
    seed: int = 0
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
    return Config(**vars(p.parse_args()))


def main() -> None:
    cfg = parse_args()
    distributed = "WORLD_SIZE" in os.environ
    if distributed:
        dist.init_process_group("gloo")
    rank, world_size = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    torch.manual_seed(cfg.seed)  # same initial weights on every rank

    tables = [
        EmbeddingBagConfig(
            name=f"t_{name}", embedding_dim=cfg.embedding_dim, num_embeddings=cfg.num_embeddings, feature_names=[name]
        )
        for name in DEFAULT_CAT_NAMES
    ]
    model = DLRMTrain(
        DLRM(
            embedding_bag_collection=EmbeddingBagCollection(tables=tables),
            dense_in_features=len(DEFAULT_INT_NAMES),
            dense_arch_layer_sizes=cfg.dense_arch_layer_sizes,
            over_arch_layer_sizes=cfg.over_arch_layer_sizes,
        )
    )
    if distributed:
        model = DistributedDataParallel(model)
    optimizer = KeyedOptimizerWrapper(
        dict(model.named_parameters()), lambda params: torch.optim.SGD(params, lr=cfg.learning_rate)
    )

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

    losses: List[float] = []
    start = time.perf_counter()
    for batch in tqdm(data, total=cfg.num_batches, disable=rank != 0, desc="train", unit="batch"):
        optimizer.zero_grad()
        loss, (_, logits, labels) = model(batch)  # loss: scalar; logits, labels: (B,)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    elapsed = time.perf_counter() - start

    if rank == 0:
        os.makedirs(cfg.out_dir, exist_ok=True)
        path = os.path.join(cfg.out_dir, "dlrm_random.pt")
        state = (model.module if distributed else model).state_dict()
        tmp = path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees a half-written checkpoint
        samples = cfg.num_batches * cfg.batch_size * world_size
        print(
            f"\nDLRM on random data: {world_size} process(es), {cfg.num_batches} steps x {cfg.batch_size} per rank\n"
            f"  throughput  {samples / elapsed:,.0f} samples/s ({elapsed:.1f} s)\n"
            f"  loss        first {losses[0]:.4f}  last {losses[-1]:.4f}\n"
            f"  checkpoint  {path} ({len(state)} tensors)"
        )
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
