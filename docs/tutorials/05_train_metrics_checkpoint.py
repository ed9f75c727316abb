"""Tutorial 5 — train a sharded DLRM, track metrics, save and restore the model (2 gloo processes, CPU).

    python docs/tutorials/05_train_metrics_checkpoint.py

The loop a TorchRec user writes:

1. declare the model on ``meta``; attach the sparse optimizer with ``apply_optimizer_in_backward`` (the sharded
   tables then update inside ``backward``, fused into the embedding kernel);
2. plan with ``EmbeddingShardingPlanner.collective_plan`` and shard with ``DistributedModelParallel``;
3. drive the fused sparse optimizer and a dense one through one ``CombinedOptimizer``;
4. feed predictions to a ``RecMetricModule`` (NE, AUC, ...), whose ``compute()`` combines every rank's examples;
5. save each rank's ``state_dict()`` (its shards, as ShardedTensors) and load it into a freshly sharded model.

The script checks the metric against NE computed by hand from all ranks' predictions, and that the restored
model returns the same logits as the trained one.
"""

import math
import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.distributed.model_parallel import DistributedModelParallel, get_default_sharders
from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
from recsys_lib.metrics import (
    generate_metric_module,
    MetricsConfig,
    RecMetricDef,
    RecMetricEnum,
    RecMetricModule,
    RecTaskInfo,
)
from recsys_lib.models.dlrm import DLRM, DLRMTrain
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad

WORLD_SIZE = 2
B = 64  # examples per rank and step
STEPS = 20
D = 8  # embedding dim (DLRM: also the width of the dense arch's output)
SPARSE = ["user", "item", "category"]
NUM_DENSE = 4


def build_model(num_embeddings: int = 500) -> DLRMTrain:
    tables = [
        EmbeddingBagConfig(name=f"t_{f}", embedding_dim=D, num_embeddings=num_embeddings, feature_names=[f])
        for f in SPARSE
    ]
    return DLRMTrain(DLRM(
        embedding_bag_collection=EmbeddingBagCollection(tables=tables, device=torch.device("meta")),
        dense_in_features=NUM_DENSE,
        dense_arch_layer_sizes=[16, D],
        over_arch_layer_sizes=[16, 1],
    ))


def shard(train_model: DLRMTrain, pg: dist.ProcessGroup) -> DistributedModelParallel:
    # Sparse optimizer first: the sharders read it and fuse RowWiseAdagrad into the tables' kernels.
    apply_optimizer_in_backward(RowWiseAdagrad, train_model.model.sparse_arch.parameters(), {"lr": 0.05})
    planner = EmbeddingShardingPlanner(topology=Topology(world_size=WORLD_SIZE, compute_device="cpu"), debug=False)
    plan = planner.collective_plan(train_model, get_default_sharders(), pg)  # planned on rank 0, broadcast
    return DistributedModelParallel(module=train_model, device=torch.device("cpu"), plan=plan)


def worker(rank: int, ckpt_dir: str) -> None:
    # The ranks meet through a file (as in tutorial 4); under torchrun: dist.init_process_group("gloo").
    rendezvous = os.path.join(ckpt_dir, "rendezvous")
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    torch.manual_seed(0)  # same dense initial weights on both ranks (DDP also broadcasts rank 0's)

    model = shard(build_model(), dist.GroupMember.WORLD)
    dense_optimizer = KeyedOptimizerWrapper(
        dict(in_backward_optimizer_filter(model.named_parameters())),  # every parameter not fused in backward
        lambda params: torch.optim.Adagrad(params, lr=0.05),
    )
    optimizer = CombinedOptimizer([model.fused_optimizer, dense_optimizer])

    # Metrics: one task ("click") with NE and AUC; "lifetime_*" values cover every example seen, "window_*" the
    # last window_size examples (summed over ranks).
    task = RecTaskInfo(name="click", label_name="label", prediction_name="prediction", weight_name="weight")
    metrics = generate_metric_module(
        RecMetricModule,
        MetricsConfig(
            rec_tasks=[task],
            rec_metrics={
                RecMetricEnum.NE: RecMetricDef(rec_tasks=[task], window_size=10 * B * WORLD_SIZE),
                RecMetricEnum.AUC: RecMetricDef(rec_tasks=[task], window_size=10 * B * WORLD_SIZE),
            },
            compute_on_all_ranks=True,  # default False: only rank 0 gets the values (the others an empty dict)
        ),
        batch_size=B, world_size=WORLD_SIZE, my_rank=rank, state_metrics_mapping={}, device=torch.device("cpu"),
    )

    # Random Criteo-shaped data; each rank draws its own batches. It cycles through 10 generated batches, so the
    # loss falls as the model memorises them.
    data = RandomRecDataset(keys=SPARSE, batch_size=B, hash_size=500, ids_per_feature=2, num_dense=NUM_DENSE,
                            manual_seed=rank, num_batches=STEPS)
    model.train()
    losses, seen = [], []
    for batch in data:
        # batch.dense_features: (B, 4); batch.sparse_features: KJT with 3 keys; batch.labels: (B,)
        optimizer.zero_grad()
        loss, (_, logits, labels) = model(batch)  # loss: scalar; logits, labels: (B,)
        loss.backward()  # the sharded tables are updated here (fused RowWiseAdagrad)
        optimizer.step()  # the dense layers (Adagrad); the fused part's step does nothing
        prediction = torch.sigmoid(logits)
        metrics.update({"prediction": prediction, "label": labels, "weight": torch.ones_like(labels)})
        losses.append(loss.item())
        seen.append((prediction, labels))
    results = metrics.compute()  # a collective: every rank calls it; values cover both ranks' examples
    ne = results["ne-click|lifetime_ne"].item()

    # NE by hand over every example of both ranks: weighted cross entropy / entropy of the mean label.
    p = torch.cat([s[0] for s in seen]).double().clamp(1e-12, 1 - 1e-12)
    y = torch.cat([s[1] for s in seen]).double()
    everything = [torch.zeros(0)] * WORLD_SIZE
    dist.all_gather_object(everything, torch.stack([p, y]))
    p, y = torch.cat(everything, dim=1)
    ce = -(y * p.log() + (1 - y) * (1 - p).log()).sum()
    mean_y = y.mean()
    expected_ne = ce / -(y.sum() * mean_y.log() + (1 - y).sum() * (1 - mean_y).log())
    assert math.isclose(ne, expected_ne.item(), rel_tol=1e-6), (ne, expected_ne.item())
    assert losses[-1] < losses[0], losses  # the model learns the 10 repeated batches
    if rank == 0:
        print(f"loss {losses[0]:.4f} -> {losses[-1]:.4f};  lifetime NE {ne:.4f};  "
              f"window AUC {results['auc-click|window_auc'].item():.4f}")

    # Checkpoint: each rank saves its own state dict (its shards + the replicated dense weights). A real job
    # would also save optimizer.state_dict(), and the metric module's state_dict() to resume its windows.
    path = os.path.join(ckpt_dir, f"model_rank{rank}.pt")
    torch.save(model.state_dict(), path)
    dist.barrier()

    # Restore into a freshly built and sharded model (same plan: the planner is deterministic).
    torch.manual_seed(1)  # different initial weights, so the check below means something
    restored = shard(build_model(), dist.GroupMember.WORLD)
    restored.load_state_dict(torch.load(path, weights_only=False))

    model.eval()
    restored.eval()
    probe = next(iter(RandomRecDataset(keys=SPARSE, batch_size=B, hash_size=500, ids_per_feature=2,
                                       num_dense=NUM_DENSE, manual_seed=10 + rank, num_batches=1)))
    with torch.no_grad():
        _, (_, logits_trained, _) = model(probe)
        _, (_, logits_restored, _) = restored(probe)
    torch.testing.assert_close(logits_restored, logits_trained)
    if rank == 0:
        print(f"checkpoint: {len(model.state_dict())} tensors per rank in {ckpt_dir}; the restored model matches")
        print("tutorial 5 OK")
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as ckpt_dir:
        mp.spawn(worker, args=(ckpt_dir,), nprocs=WORLD_SIZE, join=True)
