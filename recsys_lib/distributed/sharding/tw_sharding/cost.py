"""Planner cost terms of table-wise sharding (pure; see ``planner/_cost_terms.py`` for the model).

The owner rank looks up every id of the table in the global batch; ids arrive by an all-to-all and
pooled vectors leave by an all-to-all (gradients come back the same way in backward).
"""

from recsys_lib.distributed.planner._cost_terms import (
    ShardCost,
    ShardCostInputs,
    comms_ms,
    global_ids,
    global_outputs,
    lookup_ms,
    output_bytes,
    routed_shard_cost,
    world_crosses_hosts,
)


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c)
    outs = global_outputs(c)
    out_bytes = output_bytes(c, outs)
    out_comms = comms_ms(c, out_bytes, c.world_size, world_crosses_hosts(c))
    return routed_shard_cost(c, ids, lookup_ms(c, ids, outs), out_bytes, out_comms)
