"""Planner cost terms of column-wise sharding: each column block costs what a table of that width costs
table-wise (the block's ``shard_cols`` enters every byte count)."""

from recsys_lib.distributed.planner._cost_terms import ShardCost, ShardCostInputs
from recsys_lib.distributed.sharding.tw_sharding import cost as tw_cost


def shard_cost(c: ShardCostInputs) -> ShardCost:
    return tw_cost.shard_cost(c)
