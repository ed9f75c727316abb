"""Planner cost terms of grid sharding: every column block is a table-row-wise table of that width on
one host (``multi_host`` placement: one host per column block)."""

from recsys_lib.distributed.planner._cost_terms import ShardCost, ShardCostInputs
from recsys_lib.distributed.sharding.twrw_sharding import cost as twrw_cost


def shard_cost(c: ShardCostInputs) -> ShardCost:
    return twrw_cost.shard_cost(c)
