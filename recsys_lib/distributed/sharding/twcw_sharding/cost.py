"""Planner cost terms of table-column-wise sharding: column blocks as column-wise, all placed on the
ranks of one host (the partitioner's ``host`` placement)."""

from recsys_lib.distributed.planner._cost_terms import ShardCost, ShardCostInputs
from recsys_lib.distributed.sharding.cw_sharding import cost as cw_cost


def shard_cost(c: ShardCostInputs) -> ShardCost:
    return cw_cost.shard_cost(c)
