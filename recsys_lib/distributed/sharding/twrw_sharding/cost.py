"""Planner cost terms of table-row-wise sharding (pure; model in ``planner/_cost_terms.py``).

Rows are split over the ``L`` ranks of one host. Ids come from every rank (crossing hosts when there
are several); partial pooled vectors are reduce-scattered inside the host (fast link), then each
rank sends its ``1/L`` of the summed vectors to their owners by a cross-host all-to-all.
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
from recsys_lib.distributed.sharding.rw_sharding import cost as rw_cost


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c) * rw_cost.row_fraction(c)
    outs = global_outputs(c) if c.is_pooled else ids
    out_bytes = output_bytes(c, outs)
    local = c.local_world_size
    intra = comms_ms(c, out_bytes * (local - 1) / local, local, False)
    inter = comms_ms(c, out_bytes / local, c.world_size // local, True) if world_crosses_hosts(c) else 0.0
    return routed_shard_cost(c, ids, lookup_ms(c, ids, outs) + rw_cost.bucketize_ms(c), out_bytes, intra + inter)
