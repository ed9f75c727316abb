"""Spawned case for the delta tracker's optimizer-state modes: a DMP over an EBC (two row-wise tables in one fused
kernel, exact row-wise Adagrad) and an EC (row-wise). The reference reads the row-wise Adagrad state through the
DMP's fused optimizer state dict (not through the kernels the tracker reads) before every step:

* ``ROWWISE_ADAGRAD`` / ``MOMENTUM_DIFF``: for each touched local row, state after the interval minus state before it
  (a row's state only changes in steps that look it up);
* ``MOMENTUM_LAST``: the state (its norm: the absolute value of a row-wise state) before the last step that touched
  the row.
"""

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.model_tracker.model_delta_tracker import ModelDeltaTrackerTrec
from recsys_lib.distributed.model_tracker.types import TrackingMode
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")
TABLES = {"b0": ("ebc", 11), "b1": ("ebc", 6), "s0": ("ec", 9)}
FUSED = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.05}


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.ebc = EmbeddingBagCollection(tables=[EmbeddingBagConfig(name=t, embedding_dim=4, num_embeddings=r,
                                                                     feature_names=["f" + t])
                                                  for t, (m, r) in TABLES.items() if m == "ebc"], device=CPU)
        self.ec = EmbeddingCollection(tables=[EmbeddingConfig(name="s0", embedding_dim=4, num_embeddings=9,
                                                              feature_names=["fs0"])], device=CPU)

    def forward(self, bags, seqs):
        pooled, seq = self.ebc(bags), self.ec(seqs)
        return pooled.values().pow(2).sum() + seq["fs0"].values().pow(2).sum()


def _batch(g):
    def kjt(feats):
        lengths = torch.randint(0, 4, (len(feats) * 3,), generator=g)
        chunks = lengths.view(len(feats), 3).sum(1).tolist()
        values = torch.cat([torch.randint(0, TABLES[f[1:]][1], (n,), generator=g) for f, n in zip(feats, chunks)])
        return KeyedJaggedTensor(keys=feats, values=values, lengths=lengths)

    return kjt(["fb0", "fb1"]), kjt(["fs0"])


def _state(dmp, rank):
    """{table fqn: this rank's row-wise Adagrad state (local rows,)} via the fused optimizer's state dict."""
    sd = dmp.fused_optimizer.state_dict()["state"]
    out = {}
    for t, (m, _) in TABLES.items():
        fqn = f"{m}.{'embedding_bags' if m == 'ebc' else 'embeddings'}.{t}"
        st = sd[f"{fqn}.weight"][f"{t}.momentum1"]
        out[fqn] = st.local_shards()[0].tensor.view(-1).clone()
    return out


def _local_rows(dmp, kjts, plan, rank, world):
    """{table fqn: local rows of this rank touched by the global batch (every rank's kjts)}."""
    out = {}
    for t, (m, _) in TABLES.items():
        md = [s for s in plan.plan[m][t].sharding_spec.shards if s.placement.rank() == rank][0]
        r0, n = md.shard_offsets[0], md.shard_sizes[0]
        ids = torch.cat([k["f" + t].values() for pair in kjts for k in pair if "f" + t in k.keys()])
        out[f"{m}.{'embedding_bags' if m == 'ebc' else 'embeddings'}.{t}"] = torch.unique(
            ids[(ids >= r0) & (ids < r0 + n)] - r0)
    return out


def tracker_optim_case(rank, world):
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    results = {}
    for mode in (TrackingMode.ROWWISE_ADAGRAD, TrackingMode.MOMENTUM_LAST):
        torch.manual_seed(0)
        model = Model()
        plan = ShardingPlan({m: construct_module_sharding_plan(
            getattr(model, m), {t: row_wise(compute_kernel="fused") for t, (mm, _) in TABLES.items() if mm == m},
            local_size=world, world_size=world, device_type="cpu") for m in ("ebc", "ec")})
        sharders = [EmbeddingBagCollectionSharder(fused_params=FUSED), EmbeddingCollectionSharder(fused_params=FUSED)]
        dmp = DistributedModelParallel(model, env=env, device=CPU, plan=plan, sharders=sharders)
        tracker = ModelDeltaTrackerTrec(dmp._dmp_wrapped_module, mode=mode)
        g = torch.Generator().manual_seed(7)
        for interval in range(2):
            start = _state(dmp, rank)
            last_seen = {}
            everyone = []
            for _ in range(3):
                tracker.step()
                batches = [_batch(g) for _ in range(world)]
                everyone += batches
                before = _state(dmp, rank)
                for fqn, rows in _local_rows(dmp, batches, plan, rank, world).items():
                    for r in rows.tolist():
                        last_seen[(fqn, r)] = before[fqn][r].abs()
                dmp(*batches[rank]).backward()
            got = tracker.get_unique()
            end = _state(dmp, rank)
            for fqn, rows in _local_rows(dmp, everyone, plan, rank, world).items():
                have = got.get(fqn)
                ids = have.ids if have is not None else torch.empty(0, dtype=torch.int64)
                order = torch.argsort(ids)
                assert torch.equal(ids[order], rows), (mode, fqn, ids, rows)
                if rows.numel() == 0:
                    continue
                if mode == TrackingMode.ROWWISE_ADAGRAD:
                    want = end[fqn][rows] - start[fqn][rows]
                    assert bool((want > 0).all()), "touched rows must have grown"
                else:
                    want = torch.stack([last_seen[(fqn, r)] for r in rows.tolist()])
                torch.testing.assert_close(have.states[order], want)
            results[(mode.value, interval)] = True
    return results
