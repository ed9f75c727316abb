"""T2: evicted rows of a sharded MC-EC start with a zero row-wise Adagrad accumulator (TorchRec resets
``momentum1`` with the weights in ``reset_embedding_weight_momentum``).

Reference (plain torch): with ``loss = sum of every looked-up embedding``, the gradient of a row is its number of
occurrences in the global batch divided by the world size (sharded modules average gradients like DDP) in every
column, so exact row-wise Adagrad adds ``count**2`` to the row's
``momentum1``; rows evicted in a step are zeroed before that step's lookups. The remapped rows and evictions come
from the unsharded per-rank MCH modules of ``test_mc_sharding.Reference``.
"""

import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.mc_embedding import ManagedCollisionEmbeddingCollectionSharder
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.types import ShardingEnv
from tests.distributed.mc.test_mc_sharding import CPU, TABLES, Reference, batches, make_module


def optimizer_reset_case(rank, world):
    module, weights = make_module(False, world)
    fused = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.1}
    sharder = ManagedCollisionEmbeddingCollectionSharder(ec_sharder=EmbeddingCollectionSharder(fused_params=fused))
    plan = construct_module_sharding_plan(module, {t: row_wise(compute_kernel="fused") for t in TABLES}, sharder=sharder, local_size=world,
                                          world_size=world, device_type="cpu")
    sharded = sharder.shard(module, plan, ShardingEnv.from_process_group(dist.group.WORLD), CPU)
    ref = Reference(world, weights)
    momentum = {t: torch.zeros(r) for t, (r, _, _) in TABLES.items()}
    zeroed_with_history = 0
    for per_rank in batches(world, seed=2):
        out, _ = sharded(per_rank[rank]).wait()
        sum(out[f].values().sum() for f in ["a", "b", "c"]).backward()
        rows = ref.step(per_rank)
        for t, (_, feats, _) in TABLES.items():
            for ev in ref.last_evictions[t]:
                zeroed_with_history += int((momentum[t][ev] > 0).sum())
                momentum[t][ev] = 0
            used = torch.cat([rows[r][f] for r in range(world) for f in feats])
            momentum[t] += (torch.bincount(used, minlength=momentum[t].numel()).float() / world) ** 2
        state = sharded.fused_optimizer.state_dict()["state"]
        for t in TABLES:
            assert f"embeddings.{t}.weight" in state, {k: list(v) for k, v in state.items()}
            st = state[f"embeddings.{t}.weight"][f"{t}.momentum1"]
            shard = st.local_shards()[0]
            r0, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
            torch.testing.assert_close(shard.tensor.view(-1), momentum[t][r0:r0 + n])
    assert zeroed_with_history > 0, "the case must evict rows that had optimizer state"
    return True


def test_evicted_rows_reset_rowwise_adagrad_state(world2_results):
    assert all(r["optim"] is True for r in world2_results)


def test_replica_sync_merges_identities_and_averages_rows(world2_results):
    assert all(r["sync"] is True for r in world2_results)
