"""Tutorial 3 — the sharding planner: which rank holds which table, and why.

    python docs/tutorials/03_sharding_plan.py

Tables too large (or too many) for one device are split over ranks. A *sharding plan* says, per table, how
(data-parallel, table-wise, column-wise, row-wise, ...) and where (which ranks, which rows / columns each holds).
``EmbeddingShardingPlanner`` searches for a plan that fits each rank's memory and balances the estimated step time;
you can steer it with ``ParameterConstraints`` or write a plan by hand with ``sharding_plan`` helpers.

Planning is pure arithmetic over the module's table shapes: no process group is needed, and the module may live on
the ``meta`` device (nothing allocated). Tutorial 4 hands a plan to ``DistributedModelParallel``.
"""

import torch

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.distributed.model_parallel import get_default_sharders
from recsys_lib.distributed.planner import EmbeddingShardingPlanner, ParameterConstraints, Topology
from recsys_lib.distributed.planner.report import plan_report
from recsys_lib.distributed.sharding_plan import (
    column_wise,
    construct_module_sharding_plan,
    data_parallel,
    row_wise,
    table_wise,
)
from recsys_lib.distributed.types import ShardingPlan, ShardingType

WORLD_SIZE = 2

# Four tables of different shapes (R rows x D columns), declared on "meta": the planner only reads shapes.
tables = [
    EmbeddingBagConfig(name="t_small", embedding_dim=8, num_embeddings=100, feature_names=["f_small"]),
    EmbeddingBagConfig(name="t_wide", embedding_dim=64, num_embeddings=1_000, feature_names=["f_wide"]),
    EmbeddingBagConfig(name="t_big", embedding_dim=16, num_embeddings=50_000, feature_names=["f_big"]),
    EmbeddingBagConfig(name="t_mid", embedding_dim=16, num_embeddings=5_000, feature_names=["f_mid"]),
]
ebc = EmbeddingBagCollection(tables=tables, device=torch.device("meta"))

# --- 1. Let the planner choose -------------------------------------------------------------------------------
# Topology describes the ranks: how many, which device type, and the memory and bandwidths the cost model uses.
topology = Topology(world_size=WORLD_SIZE, compute_device="cpu", local_world_size=WORLD_SIZE)
planner = EmbeddingShardingPlanner(
    topology=topology,
    batch_size=128,  # per-rank batch: scales the estimated compute and communication
    # Constraints narrow a table's options; tables without one may take any option the sharder offers.
    constraints={
        "t_wide": ParameterConstraints(sharding_types=[ShardingType.COLUMN_WISE.value]),
        "t_small": ParameterConstraints(sharding_types=[ShardingType.DATA_PARALLEL.value]),
    },
    debug=False,
)
plan = planner.plan(ebc, get_default_sharders())  # ShardingPlan: {module path: {table: ParameterSharding}}
print("The planner's plan:\n", plan, sep="")

module_plan = plan.plan[""]  # "" is the path of the root module: the EBC itself
assert module_plan["t_wide"].sharding_type == "column_wise"
assert module_plan["t_small"].sharding_type == "data_parallel"
assert module_plan["t_small"].ranks == list(range(WORLD_SIZE))  # a data-parallel table is replicated on every rank
for name, ps in module_plan.items():
    # Every shard of every table sits on a rank that exists.
    assert all(0 <= r < WORLD_SIZE for r in ps.ranks), (name, ps.ranks)

# The report estimates, per rank, the step time and memory this plan costs (the numbers the planner balanced).
report = plan_report(plan, topology, module=ebc, batch_size=128)
print("\nPer-rank estimates:\n" + report.to_text())
assert len(report.total_ms) == WORLD_SIZE

# --- 2. Or write the plan by hand ------------------------------------------------------------------------------
# One helper per strategy; each returns a function the plan builder calls with the table's parameter.
# Row-wise is not among the planner's CPU options (as in TorchRec, it is offered for CUDA), but a hand-written
# row-wise plan runs on CPU with gloo like every other strategy.
hand = construct_module_sharding_plan(
    ebc,
    per_param_sharding={
        "t_small": data_parallel(),  # every rank holds the whole table; gradients are all-reduced
        "t_wide": column_wise(ranks=[0, 1]),  # columns 0..31 on rank 0, 32..63 on rank 1
        "t_big": row_wise(),  # rows split into WORLD_SIZE contiguous blocks, one per rank
        "t_mid": table_wise(rank=1),  # the whole table on rank 1
    },
    world_size=WORLD_SIZE,
    local_size=WORLD_SIZE,
    device_type="cpu",
)
print("\nA hand-written plan:\n", ShardingPlan({"": hand}), sep="")

# Shard metadata say exactly which block of the table each rank holds: offsets and sizes in (rows, columns).
big = [(md.placement.rank(), md.shard_offsets, md.shard_sizes) for md in hand["t_big"].sharding_spec.shards]
assert big == [(0, [0, 0], [25_000, 16]), (1, [25_000, 0], [25_000, 16])], big
wide = [(md.placement.rank(), md.shard_offsets, md.shard_sizes) for md in hand["t_wide"].sharding_spec.shards]
assert wide == [(0, [0, 0], [1_000, 32]), (1, [0, 32], [1_000, 32])], wide
assert hand["t_mid"].ranks == [1] and hand["t_small"].sharding_spec is None

print("tutorial 3 OK")
