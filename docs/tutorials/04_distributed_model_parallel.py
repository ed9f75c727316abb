"""Tutorial 4 — DistributedModelParallel: shard the tables over 2 processes (gloo, CPU).

    python docs/tutorials/04_distributed_model_parallel.py

``DistributedModelParallel`` (DMP) takes a single-device model and a plan, replaces every embedding collection
with its sharded counterpart (each rank allocates only its own shards) and wraps the dense rest in
DistributedDataParallel. The model's code does not change: the sharded EBC takes the rank's local batch
(a KJT of B examples) and returns the same ``(B, sum(D))`` KeyedTensor the unsharded EBC would, moving ids and
embeddings between ranks with collectives (all-to-all, all-gather, reduce-scatter, depending on the strategy).

This script starts 2 processes with ``torch.multiprocessing.spawn``; with ``torchrun --nproc_per_node=2`` you
would call ``worker`` from each process instead. Each rank checks its sharded output against an unsharded EBC
holding the same weights.
"""

import os
import tempfile

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig, KeyedJaggedTensor
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed import sharding_plan as sp
from recsys_lib.distributed.types import ShardingPlan

WORLD_SIZE = 2
B = 4  # examples per rank


def make_tables():
    return [
        EmbeddingBagConfig(name="t_small", embedding_dim=8, num_embeddings=10, feature_names=["f_small"]),
        EmbeddingBagConfig(name="t_wide", embedding_dim=16, num_embeddings=20, feature_names=["f_wide"]),
        EmbeddingBagConfig(name="t_big", embedding_dim=8, num_embeddings=30, feature_names=["f_big"]),
        EmbeddingBagConfig(name="t_mid", embedding_dim=8, num_embeddings=15, feature_names=["f_mid"]),
    ]


def local_batch(rank: int) -> KeyedJaggedTensor:
    """This rank's B examples: 0 to 3 ids per feature and example, drawn with a rank-dependent seed."""
    g = torch.Generator().manual_seed(100 + rank)
    tables = make_tables()
    lengths = torch.randint(0, 4, (len(tables) * B,), generator=g)  # (F*B,), key-major
    values = torch.cat([
        torch.randint(0, t.num_embeddings, (int(n),), generator=g)
        for t, n in zip(tables, lengths.view(len(tables), B).sum(dim=1))
    ])
    return KeyedJaggedTensor(keys=[t.feature_names[0] for t in tables], values=values, lengths=lengths)


def worker(rank: int, rendezvous: str) -> None:
    # The ranks meet through a file (no port to pick); under torchrun: dist.init_process_group("gloo").
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=WORLD_SIZE)
    torch.set_num_threads(1)

    # The single-device model, on "meta": DMP allocates (and initialises) only this rank's shards.
    ebc = EmbeddingBagCollection(tables=make_tables(), device=torch.device("meta"))

    # One table per strategy (the plan of tutorial 3). The planner works too:
    #   plan = EmbeddingShardingPlanner(topology=Topology(WORLD_SIZE, "cpu")).collective_plan(ebc, sharders, pg)
    # where collective_plan plans on rank 0 and broadcasts, so every rank gets the same plan.
    plan = ShardingPlan({"": sp.construct_module_sharding_plan(
        ebc,
        per_param_sharding={
            "t_small": sp.data_parallel(),
            "t_wide": sp.column_wise(ranks=[0, 1]),
            "t_big": sp.row_wise(),
            "t_mid": sp.table_wise(rank=1),
        },
        world_size=WORLD_SIZE,
        local_size=WORLD_SIZE,
        device_type="cpu",
    )})
    model = DistributedModelParallel(module=ebc, device=torch.device("cpu"), plan=plan)
    if rank == 0:  # the EBC was swapped for its sharded counterpart; plan: which rank holds what
        print(type(model.module).__name__, "\n", model.plan, sep="")

    # The reference: an unsharded EBC with seeded weights, identical on both ranks.
    torch.manual_seed(0)
    reference = EmbeddingBagCollection(tables=make_tables(), device=torch.device("cpu"))
    full = reference.state_dict()

    # Copy those weights into the sharded model. A sharded table's state-dict value is a ShardedTensor: its
    # local shards are this rank's blocks, each with its (row, column) offset and size in the whole table.
    # A data-parallel table is a plain tensor, replicated on every rank.
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if isinstance(value, ShardedTensor):
                for shard in value.local_shards():
                    (r0, c0), (nr, nc) = shard.metadata.shard_offsets, shard.metadata.shard_sizes
                    shard.tensor.copy_(full[key][r0:r0 + nr, c0:c0 + nc])
                    print(f"rank {rank}: {key} rows {r0}..{r0 + nr - 1} cols {c0}..{c0 + nc - 1}")
            else:
                value.copy_(full[key])

    # Forward: each rank feeds its own local batch and gets pooled embeddings for exactly those examples.
    kjt = local_batch(rank)
    sharded_out = model(kjt)  # KeyedTensor, values: (B, 8 + 16 + 8 + 8)
    expected = reference(kjt)
    assert sharded_out.keys() == expected.keys()
    torch.testing.assert_close(sharded_out.values(), expected.values())

    dist.barrier()
    if rank == 0:
        print("sharded output equals the unsharded one on every rank; tutorial 4 OK")
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        # spawn raises in the parent if any rank raised (e.g. a failed assert).
        mp.spawn(worker, args=(os.path.join(tmp, "rendezvous"),), nprocs=WORLD_SIZE, join=True)
