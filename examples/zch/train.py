"""Train a click model on raw 64-bit ids through a managed-collision EmbeddingCollection (one process, CPU).

    python examples/zch/train.py                         # MCH (sorted table, distance-LFU eviction)
    python examples/zch/train.py --zch hash              # multi-probe hash ZCH (TTL eviction)

Ids are random 64-bit values, far beyond any table size: each feature draws them from a vocabulary of
``vocab`` ids with Zipf-like popularity, and every id carries a hidden click bias. The table has fewer rows
than the vocabulary, so the managed-collision module decides which ids own a row (the popular ones) and sends
the rest to a shared miss row (MCH) or a collided row (hash ZCH). Rows that change owner are re-initialised.
The model (mean-pooled id embeddings -> linear -> logit) learns the biases of the ids that own rows; the summary
prints throughput, first/last loss, how many of the most popular ids own a row, and where the checkpoint went.
"""

import argparse
import dataclasses
import os
import time

import torch
from tqdm import tqdm

from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig, HashZchEvictionPolicyName
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.modules.mc_modules import DistanceLFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


@dataclasses.dataclass
class Config:
    zch: str = "mch"  # "mch" or "hash"
    features: int = 2  # F, one table each
    rows: int = 2000  # R per table
    vocab: int = 20000  # distinct raw ids per feature (> R)
    dim: int = 16  # D
    batch_size: int = 128  # B
    ids_per_sample: int = 4  # L per feature
    num_batches: int = 150
    eviction_interval: int = 5  # MCH: batches between eviction rounds
    lr: float = 0.05
    seed: int = 0
    out_dir: str = "/tmp/zch_example"


def parse() -> Config:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for f in dataclasses.fields(Config):
        p.add_argument("--" + f.name, type=type(f.default), default=f.default)
    return Config(**vars(p.parse_args()))


def mc_module(cfg: Config, name: str) -> torch.nn.Module:
    if cfg.zch == "mch":
        return MCHManagedCollisionModule(zch_size=cfg.rows, device=torch.device("cpu"), name=name,
                                         eviction_policy=DistanceLFU_EvictionPolicy(),
                                         eviction_interval=cfg.eviction_interval)
    return HashZchManagedCollisionModule(zch_size=cfg.rows, device=torch.device("cpu"), total_num_buckets=1,
                                         max_probe=64, name=name,
                                         eviction_policy_name=HashZchEvictionPolicyName.SINGLE_TTL_EVICTION,
                                         eviction_config=HashZchEvictionConfig(features=[name], single_ttl=24))


class ClickModel(torch.nn.Module):
    def __init__(self, cfg: Config) -> None:
        super().__init__()
        tables = [EmbeddingConfig(name=f"t{i}", embedding_dim=cfg.dim, num_embeddings=cfg.rows,
                                  feature_names=[f"f{i}"]) for i in range(cfg.features)]
        mcc = ManagedCollisionCollection({t.name: mc_module(cfg, t.feature_names[0]) for t in tables}, tables)
        self.mc_ec = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=tables), mcc,
                                                         return_remapped_features=True)
        self.head = torch.nn.Linear(cfg.features * cfg.dim, 1)

    def forward(self, kjt: KeyedJaggedTensor):
        embeddings, remapped = self.mc_ec(kjt)
        # every sample has L ids per feature: (N_f, D) -> (B, L, D) -> mean over L -> (B, F*D)
        batch = kjt.stride()
        pooled = [jt.values().view(batch, -1, jt.values().shape[1]).mean(1) for jt in embeddings.values()]
        return self.head(torch.cat(pooled, dim=1)).squeeze(1), remapped


class RawIdData:
    """Batches of raw 64-bit ids, Zipf-like popularity, label = sigmoid(sum of the ids' hidden biases)."""

    def __init__(self, cfg: Config) -> None:
        g = torch.Generator().manual_seed(cfg.seed)
        self.cfg, self.g = cfg, g
        self.vocab = torch.randint(-(2**63), 2**63 - 1, (cfg.features, cfg.vocab), generator=g)
        self.bias = torch.randn(cfg.features, cfg.vocab, generator=g) * 2
        rank = torch.arange(1, cfg.vocab + 1, dtype=torch.float)
        self.popularity = 1.0 / rank  # id k of each feature is drawn with probability ~ 1/k

    def batch(self):
        c = self.cfg
        idx = torch.multinomial(self.popularity, c.features * c.batch_size * c.ids_per_sample, replacement=True,
                                generator=self.g).view(c.features, c.batch_size, c.ids_per_sample)
        raw = torch.stack([self.vocab[f][idx[f]] for f in range(c.features)])  # (F, B, L)
        logit = torch.stack([self.bias[f][idx[f]] for f in range(c.features)]).mean(2).sum(0)  # (B,)
        label = torch.bernoulli(torch.sigmoid(logit), generator=self.g)
        kjt = KeyedJaggedTensor.from_lengths_sync(
            keys=[f"f{i}" for i in range(c.features)], values=raw.flatten(),
            lengths=torch.full((c.features * c.batch_size,), c.ids_per_sample),
        )
        return kjt, label


def main() -> None:
    cfg = parse()
    torch.manual_seed(cfg.seed)
    data, model = RawIdData(cfg), ClickModel(cfg)
    opt = torch.optim.Adagrad(model.parameters(), lr=cfg.lr)
    losses, t0 = [], time.perf_counter()
    for _ in tqdm(range(cfg.num_batches), desc="train", unit="batch", mininterval=2.0):
        kjt, label = data.batch()
        logit, _ = model(kjt)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    elapsed = time.perf_counter() - t0

    # which of the most popular ids own a row now (eval: look up without admitting)
    model.eval()
    top = min(cfg.rows // 2, cfg.vocab)
    probe = KeyedJaggedTensor.from_lengths_sync(
        keys=[f"f{i}" for i in range(cfg.features)], values=data.vocab[:, :top].flatten(),
        lengths=torch.full((cfg.features,), top))
    rows = model.mc_ec._managed_collision_collection(probe)
    owned = []
    for i, mc in enumerate(model.mc_ec._managed_collision_collection._managed_collision_modules.values()):
        r = rows[f"f{i}"].values()
        if isinstance(mc, MCHManagedCollisionModule):
            owned.append(int((r != cfg.rows - 1).sum()))
        else:
            owned.append(int((mc._hash_zch_identities.view(-1)[r] == data.vocab[i, :top]).sum()))
    os.makedirs(cfg.out_dir, exist_ok=True)
    path = os.path.join(cfg.out_dir, f"zch_{cfg.zch}.pt")
    torch.save(model.state_dict(), path)
    n_first, n_last = losses[:20], losses[-20:]
    print(f"zch={cfg.zch}  {cfg.num_batches} batches in {elapsed:.1f}s  "
          f"({cfg.num_batches * cfg.batch_size / elapsed:,.0f} samples/s, "
          f"{cfg.num_batches * cfg.batch_size * cfg.ids_per_sample * cfg.features / elapsed:,.0f} ids/s)")
    print(f"loss  first {sum(n_first) / len(n_first):.4f}  last {sum(n_last) / len(n_last):.4f}")
    print(f"rows owned by the {top} most popular ids per feature: {owned}")
    print(f"checkpoint (with the MC state: sorted ids / identities): {path}")


if __name__ == "__main__":
    main()
