"""Reaches each strategy's planner cost terms (``sharding/<x>_sharding/cost.py``) through the registry."""

from typing import Any

from recsys_lib.distributed.sharding.strategy import strategy_for


def cost_terms(sharding_type: str) -> Any:
    """The ``cost`` module of ``sharding_type``'s strategy (``shard_cost``, ``PARTITION_BY``, ``SHORT_NAME``)."""
    return strategy_for(sharding_type).cost_terms()
