"""Spawned case for 2D-sharding replica sync: two replicas of a whole hash-ZCH table trained on different ids;
WORLD is the replica group.

Checked against plain torch on the gathered pre-sync state of every replica: the merged identity table is the same
everywhere and holds only ids some replica had; ``survived`` / ``rank_to_global`` say exactly where each replica's
ids went; the averaged rows and Adagrad sums follow the documented move / zero / sum / divide steps."""

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.mc_embedding import ManagedCollisionEmbeddingCollectionSharder
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from recsys_lib.modules.hash_mc_evictions import HashZchEvictionConfig, HashZchEvictionPolicyName
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor

CPU = torch.device("cpu")
ROWS = 32


def _allreduce(tensors_by_dtype, name, opts):
    for tensors in tensors_by_dtype.values():
        for t in tensors:
            dist.all_reduce(t, op=opts.reduceOp)


def _replica_step(emb, opt, surv, r2g):
    """One replica's move / zero step of the documented averaging (plain torch)."""
    e, o = emb.clone(), opt.clone()
    e[r2g[surv]] = emb[surv]
    o[r2g[surv]] = opt[surv]
    e[r2g == -1] = 0
    o[r2g == -1] = 0
    holders = torch.zeros((emb.shape[0], 1), dtype=torch.int32)
    holders[r2g[surv]] = 1
    return e, o, holders


def _mc():
    return HashZchManagedCollisionModule(
        zch_size=ROWS, device=CPU, total_num_buckets=1, max_probe=8, name="h",
        eviction_policy_name=HashZchEvictionPolicyName.SINGLE_TTL_EVICTION,
        eviction_config=HashZchEvictionConfig(features=["x"], single_ttl=5))


def sync_case(rank, world):
    """Rank 0: a sharded MC-EC (whole table, one-rank group, fused row-wise Adagrad). Rank 1: a plain hash-ZCH
    module with plain-torch rows and Adagrad sums, doing the same all-reduces by hand. WORLD is the replica group."""
    group0 = dist.new_group([0])  # every rank creates every group
    g = torch.Generator().manual_seed(100 + rank)
    shared = torch.arange(5) * 1000 + 17  # ids both replicas see, plus ids of their own
    ids = torch.cat([shared, torch.randint(0, 2**40, (10,), generator=g)])
    if rank == 0:
        cfg = [EmbeddingConfig(name="h", embedding_dim=4, num_embeddings=ROWS, feature_names=["x"])]
        model = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=cfg, device=CPU),
                                                    ManagedCollisionCollection({"h": _mc()}, cfg))
        fused = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1}
        sharder = ManagedCollisionEmbeddingCollectionSharder(ec_sharder=EmbeddingCollectionSharder(fused_params=fused))
        plan = construct_module_sharding_plan(model, {"h": row_wise(compute_kernel="fused")}, sharder=sharder,
                                              local_size=1, world_size=1, device_type="cpu")
        sharded = sharder.shard(model, plan, ShardingEnv.from_process_group(group0), CPU)
        out, _ = sharded(KeyedJaggedTensor(keys=["x"], values=ids, lengths=torch.tensor([8, 7]))).wait()
        out["x"].values().sum().backward()
        mc = sharded._managed_collision_collection._managed_collision_modules["h"]
        kernel, i = sharded._table_kernel("h")
        emb, opt = kernel.split_embedding_weights()[i], kernel.emb_module.get_optimizer_state()[i]["sum"]
    else:
        mc = _mc()
        mc.train()
        mc.remap({"h": JaggedTensor(values=ids, lengths=torch.tensor([15]))})
        emb, opt = torch.rand(ROWS, 4, generator=g), torch.rand(ROWS, generator=g)
    before = {"ids": mc._hash_zch_identities.detach().view(-1).clone(), "emb": emb.detach().clone(),
              "sum": opt.detach().clone()}
    everyone = [None] * world
    dist.all_gather_object(everyone, before)

    survived, r2g = mc.sync_identities(rank == 0, world, list(range(world)), dist.group.WORLD)
    if rank == 0:
        sharded.sync_hash_zch_weights("h", r2g, survived, True, _allreduce)
    else:
        e, o, holders = _replica_step(emb, opt, survived, r2g)
        for t in (e, o, holders):
            dist.all_reduce(t)

    merged = mc._hash_zch_identities.detach().view(-1)
    tables = [None] * world
    dist.all_gather_object(tables, merged.clone())
    assert all(torch.equal(t, merged) for t in tables), "every replica holds the merged table"
    known = torch.cat([b["ids"] for b in everyone])
    assert bool(torch.isin(merged[merged != -1], known).all())
    old = before["ids"]
    for row in range(ROWS):
        if old[row] == -1:
            assert not survived[row] and r2g[row] == -1
        elif survived[row]:
            assert merged[r2g[row]] == old[row]
        else:
            assert not bool((merged == old[row]).any()) and r2g[row] == -1
    maps = [None] * world
    dist.all_gather_object(maps, (survived.clone(), r2g.clone()))
    if rank == 0:  # plain-torch reference of the averaging
        parts = [_replica_step(b["emb"], b["sum"], s, m) for b, (s, m) in zip(everyone, maps)]
        holders = sum(p[2] for p in parts).clamp(min=1).float()
        torch.testing.assert_close(emb, sum(p[0] for p in parts) / holders)
        torch.testing.assert_close(opt, sum(p[1] for p in parts) / holders.view(-1))
        assert int(survived.sum()) > 0 and bool((holders > 1).any()), "the case must merge shared ids"
    return True
