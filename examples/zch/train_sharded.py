"""Train the click model of ``train.py`` with its managed-collision EmbeddingCollection sharded row-wise.

    torchrun --nproc_per_node=2 examples/zch/train_sharded.py      # 2 CPU processes (gloo)
    python examples/zch/train_sharded.py                           # one process (world of 1)

Raw ids are random 64-bit values. Each table is split row-wise: rank r owns a block of rows *and* the block of the
raw-id space whose ids it may admit into them (its own MCH with its own eviction state). Per batch, every raw id
travels to the rank owning its raw-id block, is remapped there (LFU-style counts, evictions), and the row comes
back; the remapped batch then takes the normal row-wise embedding path. Embedding updates run inside backward
(fused Adagrad); the dense head is data-parallel (DDP). Rank 0 prints throughput, loss, how many of the most
popular ids own a row, and where each rank's checkpoint shard went.
"""

import argparse
import dataclasses
import os
import time

import torch
import torch.distributed as dist
from tqdm import tqdm

from recsys_lib.distributed.mc_embedding import ManagedCollisionEmbeddingCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.modules.mc_modules import DistanceLFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclasses.dataclass
class Config:
    features: int = 2  # F, one table each
    rows: int = 2000  # R per table (split over the ranks)
    vocab: int = 20000  # distinct raw ids per feature (> R)
    dim: int = 16  # D
    batch_size: int = 128  # B per rank
    ids_per_sample: int = 4  # L per feature
    num_batches: int = 150
    eviction_interval: int = 5
    lr: float = 0.05
    seed: int = 0
    out_dir: str = "/tmp/zch_sharded_example"


def parse() -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Config):
        p.add_argument("--" + f.name, type=type(f.default), default=f.default)
    return Config(**vars(p.parse_args()))


def init_process_group() -> None:
    if "RANK" not in os.environ:  # plain `python`: a world of one
        os.environ.update(RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("MASTER_PORT", "29533"))
    dist.init_process_group("gloo")


class ClickModel(torch.nn.Module):
    """Mean-pooled embeddings of raw ids (through MC-EC) -> linear -> logit."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        tables = [EmbeddingConfig(name=f"t{i}", embedding_dim=cfg.dim, num_embeddings=cfg.rows,
                                  feature_names=[f"f{i}"]) for i in range(cfg.features)]
        mcc = ManagedCollisionCollection({
            t.name: MCHManagedCollisionModule(zch_size=cfg.rows, device=torch.device("cpu"), name=t.name,
                                              eviction_policy=DistanceLFU_EvictionPolicy(),
                                              eviction_interval=cfg.eviction_interval)
            for t in tables}, tables)
        self.mc_ec = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=tables), mcc,
                                                         return_remapped_features=True)
        self.head = torch.nn.Linear(cfg.features * cfg.dim, 1)

    def forward(self, kjt: KeyedJaggedTensor):
        embeddings, remapped = self.mc_ec(kjt)
        batch = kjt.stride()  # every sample has L ids per feature: (N_f, D) -> (B, L, D) -> mean -> (B, F*D)
        pooled = [jt.values().view(batch, -1, jt.values().shape[1]).mean(1) for jt in embeddings.values()]
        return self.head(torch.cat(pooled, dim=1)).squeeze(1), remapped


class RawIdData:
    """Raw 64-bit ids with Zipf-like popularity (same vocabulary on every rank, different draws)."""

    def __init__(self, cfg: Config, rank: int) -> None:
        g = torch.Generator().manual_seed(cfg.seed)
        self.cfg = cfg
        self.vocab = torch.randint(0, 2**63 - 1, (cfg.features, cfg.vocab), generator=g)  # spread over all blocks
        self.bias = torch.randn(cfg.features, cfg.vocab, generator=g) * 2
        self.popularity = 1.0 / torch.arange(1, cfg.vocab + 1, dtype=torch.float)
        self.g = torch.Generator().manual_seed(cfg.seed + 1 + rank)

    def batch(self):
        c = self.cfg
        idx = torch.multinomial(self.popularity, c.features * c.batch_size * c.ids_per_sample, replacement=True,
                                generator=self.g).view(c.features, c.batch_size, c.ids_per_sample)
        raw = torch.stack([self.vocab[f][idx[f]] for f in range(c.features)])  # (F, B, L)
        logit = torch.stack([self.bias[f][idx[f]] for f in range(c.features)]).mean(2).sum(0)  # (B,)
        label = torch.bernoulli(torch.sigmoid(logit), generator=self.g)
        kjt = KeyedJaggedTensor(keys=[f"f{i}" for i in range(c.features)], values=raw.flatten(),
                                lengths=torch.full((c.features * c.batch_size,), c.ids_per_sample))
        return kjt, label


def main() -> None:
    cfg = parse()
    init_process_group()
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.manual_seed(cfg.seed)
    model = ClickModel(cfg)
    sharder = ManagedCollisionEmbeddingCollectionSharder(fused_params={"optimizer": "exact_adagrad", "learning_rate": cfg.lr})
    tables = {f"t{i}": row_wise() for i in range(cfg.features)}
    plan = ShardingPlan({"mc_ec": construct_module_sharding_plan(model.mc_ec, tables, sharder=sharder, local_size=world,
                                                                 world_size=world, device_type="cpu")})
    dmp = DistributedModelParallel(model, env=ShardingEnv.from_process_group(dist.group.WORLD),
                                   device=torch.device("cpu"), plan=plan, sharders=[sharder])
    dense = {n: p for n, p in dmp.named_parameters() if "mc_ec" not in n}
    opt = KeyedOptimizerWrapper(dense, lambda params: torch.optim.Adagrad(params, lr=cfg.lr))
    data = RawIdData(cfg, rank)
    losses, t0 = [], time.perf_counter()
    for _ in tqdm(range(cfg.num_batches), desc="train", unit="batch", mininterval=2.0, disable=rank != 0):
        kjt, label = data.batch()  # KJT of raw ids: values (F*B*L,), lengths (F*B,)
        logit, _ = dmp(kjt)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, label)
        opt.zero_grad()
        loss.backward()  # embedding rows update here (fused Adagrad)
        opt.step()
        losses.append(loss.item())
    elapsed = time.perf_counter() - t0

    # which of the most popular ids own a row now (eval mode: remap without admitting; every rank takes part)
    dmp.eval()
    top = min(cfg.rows // 2, cfg.vocab)
    probe = KeyedJaggedTensor(keys=[f"f{i}" for i in range(cfg.features)], values=data.vocab[:, :top].flatten(),
                              lengths=torch.full((cfg.features,), top))
    mcc = dmp.module.mc_ec._managed_collision_collection
    rows = mcc(probe).wait()
    miss = torch.tensor([o + n - 1 for o, n in mcc._layouts["t0"].row_ranges])  # each rank's miss row: its last
    owned = [int((~torch.isin(rows[f"f{i}"].values(), miss)).sum()) for i in range(cfg.features)]

    os.makedirs(cfg.out_dir, exist_ok=True)
    path = os.path.join(cfg.out_dir, f"rank{rank}.pt")
    state = {k: (v.local_shards()[0].tensor if hasattr(v, "local_shards") else v) for k, v in dmp.state_dict().items()}
    torch.save(state, path)
    samples = torch.tensor([cfg.num_batches * cfg.batch_size * 1.0])
    dist.all_reduce(samples)
    if rank == 0:
        first, last = losses[:20], losses[-20:]
        print(f"world {world}: {cfg.num_batches} batches in {elapsed:.1f}s ({samples.item() / elapsed:,.0f} samples/s "
              f"over all ranks)")
        print(f"loss  first {sum(first) / len(first):.4f}  last {sum(last) / len(last):.4f}")
        print(f"rows owned by the {top} most popular ids per feature: {owned}")
        print(f"checkpoint shards (local rows + MC state per rank): {cfg.out_dir}/rank*.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
