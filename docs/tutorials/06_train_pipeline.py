"""Tutorial 6 — TrainPipelineSparseDist: overlap the next batch's input dist with this batch's step (2 gloo processes).

    python docs/tutorials/06_train_pipeline.py

A sharded embedding collection first sends every id to the rank that owns its row (the *input dist*, one or two
all-to-alls), then looks up, then sends the embeddings back. The input dist of batch ``i+1`` needs nothing from
batch ``i``'s step: ids never change when weights do. ``TrainPipelineSparseDist`` uses that: ``progress(it)`` runs
one training step (``zero_grad``, forward, ``backward``, ``optimizer.step``) and, around it, starts batch ``i+1``'s
input dist and reads batch ``i+2``::

    progress() call i:   batch i+2  read from the iterator (and copied to the device)
                         batch i+1  input dist started ............ finished after batch i's forward
                         batch i    forward (its input dist already done) -> backward -> optimizer.step

So it computes exactly what the plain loop computes, one step per batch in the same order. This script trains two
identically initialised sharded DLRMs on the same batches, one with the plain loop, one with the pipeline, and
checks that every step's loss and the final weights are equal.
"""

import os
import tempfile
from typing import List, Tuple

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.datasets.utils import Batch
from recsys_lib.distributed import sharding_plan as sp
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.train_pipeline import TrainPipelineSparseDist
from recsys_lib.distributed.types import ShardingPlan
from recsys_lib.models.dlrm import DLRM, DLRMTrain
from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
from recsys_lib.optim.keyed import CombinedOptimizer, KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter

WORLD_SIZE = 2
B = 16  # examples per rank and step
STEPS = 10
D = 8
SPARSE = ["user", "item"]
NUM_DENSE = 4
ROWS = 100


def build_and_shard() -> Tuple[DistributedModelParallel, CombinedOptimizer]:
    """A small DLRM, sharded (``t_user`` row-wise, ``t_item`` table-wise), and its optimizer; same init each call."""
    torch.manual_seed(0)
    tables = [EmbeddingBagConfig(name=f"t_{f}", embedding_dim=D, num_embeddings=ROWS, feature_names=[f]) for f in SPARSE]
    model = DLRMTrain(DLRM(
        embedding_bag_collection=EmbeddingBagCollection(tables=tables),
        dense_in_features=NUM_DENSE,
        dense_arch_layer_sizes=[16, D],
        over_arch_layer_sizes=[16, 1],
    ))
    ebc = model.model.sparse_arch.embedding_bag_collection
    apply_optimizer_in_backward(torch.optim.SGD, ebc.parameters(), {"lr": 0.1})  # fused into the sharded tables
    plan = ShardingPlan({"model.sparse_arch.embedding_bag_collection": sp.construct_module_sharding_plan(
        ebc,
        per_param_sharding={"t_user": sp.row_wise(), "t_item": sp.table_wise(rank=1)},
        world_size=WORLD_SIZE,
        local_size=WORLD_SIZE,
        device_type="cpu",
    )})
    dmp = DistributedModelParallel(module=model, device=torch.device("cpu"), plan=plan)
    dense = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                  lambda params: torch.optim.SGD(params, lr=0.1))
    return dmp, CombinedOptimizer([dmp.fused_optimizer, dense])


def worker(rank: int, rendezvous: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)
    # This rank's batches: dense (B, 4), a KJT with 2 keys, labels (B,); 2 distinct batches repeated, so the loss
    # visibly falls. Both runs see the same list.
    batches: List[Batch] = list(RandomRecDataset(
        keys=SPARSE, batch_size=B, hash_size=ROWS, ids_per_feature=3, num_dense=NUM_DENSE,
        manual_seed=rank, num_batches=STEPS, num_generated_batches=2,
    ))

    # The plain loop: one collective round trip inside each forward, nothing overlapped.
    plain, plain_opt = build_and_shard()
    plain_losses = []
    for batch in batches:
        plain_opt.zero_grad()
        loss, _ = plain(batch)
        loss.backward()
        plain_opt.step()
        plain_losses.append(loss.detach())

    # The pipeline: the same model and optimizer, driven by progress() until the data ends.
    piped, piped_opt = build_and_shard()
    pipeline = TrainPipelineSparseDist(piped, piped_opt, device=torch.device("cpu"))
    it = iter(batches)
    piped_losses = []
    while True:
        try:
            loss, _logits, _labels = pipeline.progress(it)  # the model's output part: (loss, logits, labels)
        except StopIteration:  # raised on every rank at the same step once the data ends
            break
        piped_losses.append(loss)
    if rank == 0:
        print(f"pipelined sharded modules: {pipeline.num_pipelined_modules}; not pipelined: "
              f"{pipeline.not_pipelined_modules or 'none'}")
    assert pipeline.num_pipelined_modules == 1  # the sharded EBC's input dist ran ahead

    assert len(piped_losses) == len(plain_losses) == STEPS
    for step, (a, b) in enumerate(zip(piped_losses, plain_losses)):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"step {step}")  # same ops, same order: bit for bit
    assert plain_losses[-1] < plain_losses[1]  # it trained (steps 1, 3, ... see the same batch)
    # Same weights: a sharded table's state-dict value is a ShardedTensor; compare this rank's shards.
    piped_state = piped.state_dict()
    for key, want in plain.state_dict().items():
        got = piped_state[key]
        if isinstance(want, ShardedTensor):  # this rank's shards (none for a table placed on the other rank)
            want, got = [s.tensor for s in want.local_shards()], [s.tensor for s in got.local_shards()]
        torch.testing.assert_close(got, want, rtol=0, atol=0, msg=key)

    dist.barrier()
    if rank == 0:
        print("losses:", " ".join(f"{x.item():.4f}" for x in plain_losses))
        print("pipelined losses and weights equal the plain loop's on both ranks; tutorial 6 OK")
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(os.path.join(tmp, "rendezvous"),), nprocs=WORLD_SIZE, join=True)
