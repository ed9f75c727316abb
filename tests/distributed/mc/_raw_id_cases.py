"""Spawned case for ``RawIdTracker``: a DMP over a hash-ZCH MC-EC (fused kernel) built with
``ModelTrackerConfigs(raw_id_tracker_config=...)``. References: the global batch (every id is remapped by exactly
one rank, so the raw ids all ranks record are, as a multiset, the ids every rank sent: the table is large enough
that every id owns its row) and the MC module's own identity table at the recorded rows."""

import torch
import torch.distributed as dist

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder
from recsys_lib.distributed.embedding_kernel import RawIdTrackerWrapper
from recsys_lib.distributed.mc_embedding import ManagedCollisionEmbeddingCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.model_tracker.trackers.raw_id_tracker import RawIdTracker
from recsys_lib.distributed.model_tracker.types import ModelTrackerConfigs, RawIdTrackerConfig, Trackers
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, row_wise
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.modules.embedding_configs import EmbeddingConfig
from recsys_lib.modules.embedding_modules import EmbeddingCollection
from recsys_lib.modules.hash_mc_modules import HashZchManagedCollisionModule
from recsys_lib.modules.mc_embedding_modules import ManagedCollisionEmbeddingCollection
from recsys_lib.modules.mc_modules import ManagedCollisionCollection
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")
ROWS = 256


def raw_id_case(rank, world):
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    cfg = [EmbeddingConfig(name="h", embedding_dim=4, num_embeddings=ROWS, feature_names=["x", "y"])]
    mc = HashZchManagedCollisionModule(zch_size=ROWS, device=CPU, total_num_buckets=4, max_probe=ROWS // 4, name="h")
    model = ManagedCollisionEmbeddingCollection(EmbeddingCollection(tables=cfg, device=CPU),
                                                ManagedCollisionCollection({"h": mc}, cfg))
    fused = {"optimizer": EmbOptimType.EXACT_ROWWISE_ADAGRAD, "learning_rate": 0.01}
    sharder = ManagedCollisionEmbeddingCollectionSharder(ec_sharder=EmbeddingCollectionSharder(fused_params=fused))
    plan = ShardingPlan({"": construct_module_sharding_plan(model, {"h": row_wise(compute_kernel="fused")},
                                                            sharder=sharder, local_size=world, world_size=world,
                                                            device_type="cpu")})
    dmp = DistributedModelParallel(model, env=ShardingEnv.from_process_group(dist.group.WORLD), device=CPU,
                                   plan=plan, sharders=[sharder],
                                   model_tracker_configs=ModelTrackerConfigs(raw_id_tracker_config=RawIdTrackerConfig()))
    tracker = dmp.model_trackers[Trackers.RAW_ID_TRACKER.name]
    assert isinstance(tracker, RawIdTracker)
    sharded = dmp._dmp_wrapped_module
    kernels = [k for lookup in sharded._embedding_module._lookups for k in lookup._emb_modules]
    assert all(isinstance(k._raw_id_tracker_wrapper, RawIdTrackerWrapper) for k in kernels)
    consumer = kernels[0].emb_module.uuid
    assert list(tracker.per_consumer_batch_idx) == [k.emb_module.uuid for k in kernels]
    g = torch.Generator().manual_seed(11)
    local_mc = sharded._managed_collision_collection._managed_collision_modules["h"]
    for _ in range(3):
        # distinct ids over the whole step (so "every id owns its row" holds), 0..9 per rank
        batch_ids = torch.randperm(10_000, generator=g)[: 12 * world].view(world, 12) * 7 + 3
        mine = batch_ids[rank]
        kjt = KeyedJaggedTensor(keys=["x", "y"], values=mine, lengths=torch.tensor([3, 2, 4, 3]))
        dmp(kjt)[0]["x"].values()
        got = tracker.get_indexed_lookups(["h"], consumer)
        raw = torch.cat(got["h"][0]).view(-1) if "h" in got else torch.empty(0, dtype=torch.int64)
        # the identity table holds each recorded raw id
        assert bool(torch.isin(raw, local_mc._hash_zch_identities.view(-1)).all())
        everyone = [None] * world
        dist.all_gather_object(everyone, raw)
        assert torch.equal(torch.sort(torch.cat(everyone)).values, torch.sort(batch_ids.view(-1)).values)
        # read again: nothing new for this consumer
        assert tracker.get_indexed_lookups(["h"], consumer) == {}
    return True
