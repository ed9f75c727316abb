"""Spawned cases for the model delta tracker: a DMP over an EBC (row-wise + table-wise tables) and an EC (row-wise);
the reference is the set of local rows of this rank's shards that the global batch touches, computed by hand."""

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.model_tracker.types import DeltaTrackerConfig, TrackingMode
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise, table_wise
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")
BAG_ROWS = {"b0": 13, "b1": 7}     # b0 row-wise, b1 table-wise on rank 0
SEQ_ROWS = {"s0": 10}             # row-wise
FEATURE_TABLE = {"fb0": "b0", "fb1": "b1", "fs0": "s0"}


class TwoModules(nn.Module):
    def __init__(self):
        super().__init__()
        self.ebc = EmbeddingBagCollection(tables=[
            EmbeddingBagConfig(name=t, embedding_dim=4, num_embeddings=r, feature_names=["f" + t]) for t, r in BAG_ROWS.items()
        ], device=CPU)
        self.ec = EmbeddingCollection(tables=[
            EmbeddingConfig(name=t, embedding_dim=4, num_embeddings=r, feature_names=["f" + t]) for t, r in SEQ_ROWS.items()
        ], device=CPU)

    def forward(self, bags, seqs):
        return self.ebc(bags), self.ec(seqs)


def _batches(world, steps, seed):
    g = torch.Generator().manual_seed(seed)
    rows = {**BAG_ROWS, **SEQ_ROWS}
    out = []
    for _ in range(steps):
        per_rank = []
        for _ in range(world):
            kjts = []
            for feats in (["fb0", "fb1"], ["fs0"]):
                lengths = torch.randint(0, 3, (len(feats) * 2,), generator=g)
                chunks = lengths.view(len(feats), 2).sum(1).tolist()
                values = torch.cat([torch.randint(0, rows[FEATURE_TABLE[f]], (n,), generator=g)
                                    for f, n in zip(feats, chunks)])
                kjts.append(KeyedJaggedTensor(keys=feats, values=values, lengths=lengths))
            per_rank.append(kjts)
        out.append(per_rank)
    return out


def _expected(batches, plan, rank):
    """{table fqn: sorted local rows of this rank's shard touched by any rank's batch}."""
    touched = {}
    for per_rank in batches:
        for kjts in per_rank:
            for kjt in kjts:
                for f in kjt.keys():
                    t = FEATURE_TABLE[f]
                    touched.setdefault(t, []).append(kjt[f].values())
    out = {}
    for module, tables in (("ebc", BAG_ROWS), ("ec", SEQ_ROWS)):
        attr = "embedding_bags" if module == "ebc" else "embeddings"
        for t in tables:
            for md in plan.plan[module][t].sharding_spec.shards:
                if md.placement.rank() != rank:
                    continue
                r0, n = md.shard_offsets[0], md.shard_sizes[0]
                ids = torch.cat(touched.get(t, [torch.empty(0, dtype=torch.int64)]))
                mine = ids[(ids >= r0) & (ids < r0 + n)] - r0
                out[f"{module}.{attr}.{t}"] = torch.unique(mine)
    return out


def tracker_case(rank, world):
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    model = TwoModules()
    plan = ShardingPlan({
        "ebc": construct_module_sharding_plan(model.ebc, {"b0": row_wise(), "b1": table_wise(rank=0)},
                                              local_size=world, world_size=world, device_type="cpu"),
        "ec": construct_module_sharding_plan(model.ec, {"s0": row_wise()}, local_size=world, world_size=world,
                                             device_type="cpu"),
    })
    dmp = DistributedModelParallel(model, env=env, device=CPU, plan=plan)
    assert dmp.get_delta_tracker() is None
    tracker = dmp.init_torchrec_delta_tracker(DeltaTrackerConfig(tracking_mode=TrackingMode.ID_ONLY))
    assert dmp.get_delta_tracker() is tracker
    batches = _batches(world, 5, seed=3)
    for per_rank in batches[:3]:
        bags, seqs = per_rank[rank]
        out_bags, out_seqs = dmp(bags, seqs)
        out_bags.values(), out_seqs  # wait
    first = tracker.get_unique_ids()
    want = _expected(batches[:3], plan, rank)
    for fqn, rows in want.items():
        got = first.get(fqn, torch.empty(0, dtype=torch.int64))
        assert torch.equal(torch.sort(got).values, rows), (fqn, got, rows)
    assert set(first) <= set(want), (first.keys(), want.keys())
    for per_rank in batches[3:]:
        bags, seqs = per_rank[rank]
        dmp(bags, seqs)[0].values()
    second = tracker.get_unique_ids()
    want = _expected(batches[3:], plan, rank)
    for fqn, rows in want.items():
        got = second.get(fqn, torch.empty(0, dtype=torch.int64))
        assert torch.equal(torch.sort(got).values, rows), (fqn, got, rows)
    # nothing new since the last read
    assert all(v.numel() == 0 for v in tracker.get_unique_ids().values())
    return True
