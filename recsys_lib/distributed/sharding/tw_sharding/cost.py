"""Planner cost terms of table-wise sharding (pure; see ``planner/_cost_terms.py`` for the model).

The owner rank looks up every id of the table in the global batch; ids arrive by an all-to-all and
pooled vectors leave by an all-to-all (gradients come back the same way in backward).
"""

from recsys_lib.distributed.planner._cost_terms import (
    ShardCost,
    ShardCostInputs,
    bwd_compute_ms,
    comms_ms,
    global_ids,
    global_outputs,
    id_bytes,
    lookup_ms,
    output_bytes,
    world_crosses_hosts,
)

PARTITION_BY = "device"
SHORT_NAME = "TW"  # column label in the planner statistics


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c)
    outs = global_outputs(c)
    fwd_compute = lookup_ms(c, ids, outs)
    in_bytes = id_bytes(c, ids)
    out_bytes = output_bytes(c, outs)
    cross = world_crosses_hosts(c)
    return ShardCost(
        fwd_compute=fwd_compute,
        fwd_comms=comms_ms(c, in_bytes, c.world_size, cross) + comms_ms(c, out_bytes, c.world_size, cross),
        bwd_compute=bwd_compute_ms(c, fwd_compute),
        bwd_comms=comms_ms(c, out_bytes, c.world_size, cross),
        input_bytes=in_bytes,
        output_bytes=out_bytes,
    )
