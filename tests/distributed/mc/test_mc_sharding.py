"""T2: sharded MC-EC / MC-EBC on spawned gloo ranks against a single-process reference.

Reference (plain code in this file): each table's rows are cut into the same per-rank row blocks, and the
*unsharded* ``MCHManagedCollisionModule`` rebuilt for each block (``rebuild_with_output_id_range``) remaps the ids
of the global batch whose raw-id block (``id // ceil(H / W)``) it owns; evicted rows are re-initialised, then rows
are gathered from the full weight matrix. Several steps with LFU evictions; compared per rank: embeddings,
remapped ids, the MC state in the state dict (ShardedTensor local shards) and the embedding shards.
"""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.comm_ops import count_collectives
from recsys_lib.distributed.mc_embedding import ManagedCollisionEmbeddingCollectionSharder
from recsys_lib.distributed.mc_embeddingbag import ManagedCollisionEmbeddingBagCollectionSharder
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from recsys_lib.modules.mc_embedding_modules import (
    ManagedCollisionEmbeddingBagCollection,
    ManagedCollisionEmbeddingCollection,
)
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_modules import LFU_EvictionPolicy, ManagedCollisionCollection, MCHManagedCollisionModule
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

CPU = torch.device("cpu")
STEPS = 5
BATCH = 3
FRESH = 0.25  # value of re-initialised rows


def fresh_init(t):
    return t.fill_(FRESH)


def mod_hash(values, size):
    return torch.remainder(values, size)


# table -> (rows, features, input_hash_size or None)
TABLES = {"t0": (8, ["a"], None), "t1": (10, ["b", "c"], 1000)}  # every rank gets rows at W = 2 and 4


def make_mc(name, rows, hash_size):
    kwargs = {} if hash_size is None else {"input_hash_size": hash_size, "input_hash_func": mod_hash}
    return MCHManagedCollisionModule(zch_size=rows, device=CPU, eviction_policy=LFU_EvictionPolicy(),
                                     eviction_interval=1, name=name, **kwargs)


def make_module(bagged, world):
    dim = 4
    cls = EmbeddingBagConfig if bagged else EmbeddingConfig
    cfgs = [cls(name=t, embedding_dim=dim, num_embeddings=r, feature_names=f, init_fn=fresh_init)
            for t, (r, f, _) in TABLES.items()]
    emb = (EmbeddingBagCollection if bagged else EmbeddingCollection)(tables=cfgs, device=CPU)
    weights = {}
    for i, c in enumerate(cfgs):
        w = torch.arange(c.num_embeddings * dim, dtype=torch.float32).view(c.num_embeddings, dim) / 7 + i
        (emb.embedding_bags if bagged else emb.embeddings)[c.name].weight.data.copy_(w)
        weights[c.name] = w.clone()
    mcc = ManagedCollisionCollection({t: make_mc(t, r, h) for t, (r, _, h) in TABLES.items()}, cfgs)
    cls_mc = ManagedCollisionEmbeddingBagCollection if bagged else ManagedCollisionEmbeddingCollection
    return cls_mc(emb, mcc, return_remapped_features=True), weights


def batches(world, seed):
    """Per step, per rank: KJT of raw 64-bit ids (keys not in module order, repeats so LFU counts matter)."""
    g = torch.Generator().manual_seed(seed)
    pool = torch.randint(0, 2**63 - 1, (40,), generator=g)
    keys = ["c", "b", "a"]
    out = []
    for _ in range(STEPS):
        per_rank = []
        for _ in range(world):
            lengths = torch.randint(0, 4, (len(keys) * BATCH,), generator=g)
            values = pool[torch.randint(0, 40, (int(lengths.sum()),), generator=g)]
            per_rank.append(KeyedJaggedTensor(keys=keys, values=values, lengths=lengths))
        out.append(per_rank)
    return out


class Reference:
    """Per-table, per-rank unsharded MCH modules on block-routed ids; the full weights (plain tensors)."""

    def __init__(self, world, weights):
        self.world = world
        self.weights = weights
        self.mcs = {}
        for t, (rows, _, h) in TABLES.items():
            block = -(-rows // world)
            bounds = [min(rows, r * block) for r in range(world + 1)]
            base = make_mc(t, rows, h)
            self.mcs[t] = [base.rebuild_with_output_id_range((bounds[r], bounds[r + 1]), bounds, CPU)
                           for r in range(world)]
        self.evicted = 0
        self.last_evictions = {}  # table -> global rows evicted by the last step

    def step(self, per_rank):
        """Returns per rank ``{feature: rows (N,)}``."""
        rows_out = [dict() for _ in range(self.world)]
        for t, (_, feats, h) in TABLES.items():
            pieces = [(r, f, per_rank[r][f].values()) for r in range(self.world) for f in feats]
            ids = torch.cat([p[2] for p in pieces])
            pre = ids if h is None else torch.remainder(ids, h)
            size = 2**63 - 1 if h is None else h
            block = -(-size // self.world)
            owner = torch.clamp(pre // block, 0, self.world - 1)
            rows = torch.empty_like(pre)
            self.last_evictions[t] = []
            for r, mc in enumerate(self.mcs[t]):
                sel = (owner == r).nonzero().squeeze(1)
                jt = {t: JaggedTensor(values=pre[sel], lengths=torch.tensor([sel.numel()]))}
                rows[sel] = mc.remap(mc.profile(jt))[t].values()
                ev = mc.evict()
                if ev is not None and ev.numel() > 0:
                    self.weights[t][ev] = FRESH
                    self.evicted += ev.numel()
                    self.last_evictions[t].append(ev)
            for (r, f, v), chunk in zip(pieces, rows.split([p[2].numel() for p in pieces])):
                rows_out[r][f] = chunk
        return rows_out


def _check_case(rank, world, bagged, seed):
    module, weights = make_module(bagged, world)
    sharder = ManagedCollisionEmbeddingBagCollectionSharder() if bagged else ManagedCollisionEmbeddingCollectionSharder()
    plan = construct_module_sharding_plan(module, {t: row_wise() for t in TABLES}, sharder=sharder, local_size=world,
                                          world_size=world, device_type="cpu")
    sharded = sharder.shard(module, plan, ShardingEnv.from_process_group(dist.group.WORLD), CPU)
    ref = Reference(world, weights)
    for per_rank in batches(world, seed):
        out, remapped = sharded(per_rank[rank]).wait()
        ref_rows = ref.step(per_rank)[rank]
        mine = per_rank[rank]
        for f in ["a", "b", "c"]:
            table = "t0" if f == "a" else "t1"
            assert torch.equal(remapped[f].values(), ref_rows[f]), (f, remapped[f].values(), ref_rows[f])
            assert torch.equal(remapped[f].lengths(), mine[f].lengths())
            expected = ref.weights[table][ref_rows[f]]
            if bagged:
                seg = torch.repeat_interleave(torch.arange(BATCH), mine[f].lengths())
                pooled = torch.zeros(BATCH, 4).index_add_(0, seg, expected)
                torch.testing.assert_close(out[f], pooled)
            else:
                torch.testing.assert_close(out[f].values(), expected)
    assert ref.evicted > 0, "the case must exercise evictions"
    sd = sharded.state_dict()
    for t, mcs in ref.mcs.items():
        mine_mc = mcs[rank]
        for buf in ["_mch_sorted_raw_ids", "_mch_remapped_ids_mapping", "_mch_counts"]:
            st = sd[f"_managed_collision_collection._managed_collision_modules.{t}.{buf}"]
            assert type(st).__name__ == "ShardedTensor" and st.size(0) == TABLES[t][0]
            assert torch.equal(st.local_shards()[0].tensor, getattr(mine_mc, buf)), (t, buf)
        w = sd[f"_embedding_module.{'embedding_bags' if bagged else 'embeddings'}.{t}.weight"]
        shard = w.local_shards()[0]
        r0, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
        torch.testing.assert_close(shard.tensor, ref.weights[t][r0:r0 + n])
    # round trip: loading the state dict back changes nothing
    sharded.load_state_dict(sd)
    # the MCC's own traffic: counts, ids, rows -- three all-to-alls whatever the number of tables (eval: no profile)
    sharded.eval()
    with count_collectives() as c:
        sharded._managed_collision_collection(batches(world, seed)[0][rank]).wait()
    assert c.by_kind() == {"all_to_all": 3}, c.by_kind()
    return True


def _too_small(rank, world):
    cfg = [EmbeddingConfig(name="tiny", embedding_dim=4, num_embeddings=world - 1, feature_names=["x"])]
    ec = EmbeddingCollection(tables=cfg, device=CPU)
    mcc = ManagedCollisionCollection({"tiny": make_mc("tiny", world - 1, None)}, cfg)
    module = ManagedCollisionEmbeddingCollection(ec, mcc)
    sharder = ManagedCollisionEmbeddingCollectionSharder()
    plan = construct_module_sharding_plan(module, {"tiny": row_wise()}, sharder=sharder, local_size=world,
                                          world_size=world, device_type="cpu")
    try:
        sharder.shard(module, plan, ShardingEnv.from_process_group(dist.group.WORLD), CPU)
    except ValueError as e:
        return str(e)
    return None


def _hash_zch_case(rank, world):
    """Hash ZCH probes inside its bucket, and each rank holds whole buckets: the sharded remap equals ONE unsharded
    module fed the global batch (single-feature table, so the insert order is the same)."""
    def make():
        return HashZchManagedCollisionModule(zch_size=16, device=CPU, total_num_buckets=4, max_probe=4, name="h")

    cfg = [EmbeddingConfig(name="h", embedding_dim=4, num_embeddings=16, feature_names=["x"])]
    module = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=cfg, device=CPU),
                                                 ManagedCollisionCollection({"h": make()}, cfg),
                                                 return_remapped_features=True)
    sharder = ManagedCollisionEmbeddingCollectionSharder()
    plan = construct_module_sharding_plan(module, {"h": row_wise()}, sharder=sharder, local_size=world,
                                          world_size=world, device_type="cpu")
    sharded = sharder.shard(module, plan, ShardingEnv.from_process_group(dist.group.WORLD), CPU)
    ref = make()
    g = torch.Generator().manual_seed(5)
    for _ in range(STEPS):
        per_rank = [torch.randint(0, 2**40, (6,), generator=g) for _ in range(world)]
        _, remapped = sharded(KeyedJaggedTensor(keys=["x"], values=per_rank[rank], lengths=torch.tensor([2, 4]))).wait()
        everyone = torch.cat(per_rank)
        rows = ref({"h": JaggedTensor(values=everyone, lengths=torch.tensor([everyone.numel()]))})["h"].values()
        assert torch.equal(remapped["x"].values(), rows[rank * 6:(rank + 1) * 6])
    return True


def all_mc_cases(rank, world):
    results = {}
    for bagged in (False, True):
        for seed in (0, 1):
            results[(bagged, seed)] = _check_case(rank, world, bagged, seed)
    results["too_small"] = _too_small(rank, world)
    results["hash_zch"] = _hash_zch_case(rank, world)
    return results


def _check(results):
    assert all(v is True for k, v in results.items() if k != "too_small")
    assert "zch_size must be >= world size" in results["too_small"] and "'tiny'" in results["too_small"]


def test_sharded_mc_equals_reference_world2(world2_results):
    for res in world2_results:
        _check(res["mc"])


@pytest.mark.slow
def test_sharded_mc_equals_reference_world4():
    for res in run_multiprocess(all_mc_cases, 4):
        _check(res)
