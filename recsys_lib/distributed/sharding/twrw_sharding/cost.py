"""Planner cost terms of table-row-wise sharding (pure; model in ``planner/_cost_terms.py``).

Rows are split over the ``L`` ranks of one host. Ids come from every rank (crossing hosts when there
are several); partial pooled vectors are reduce-scattered inside the host (fast link), then each
rank sends its ``1/L`` of the summed vectors to their owners by a cross-host all-to-all.
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
from recsys_lib.distributed.sharding.rw_sharding import cost as rw_cost

PARTITION_BY = "host"
SHORT_NAME = "TWRW"  # column label in the planner statistics


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c) * rw_cost.row_fraction(c)
    outs = global_outputs(c) if c.is_pooled else ids
    fwd_compute = lookup_ms(c, ids, outs) + rw_cost.bucketize_ms(c)
    in_bytes = id_bytes(c, ids)
    out_bytes = output_bytes(c, outs)
    local = c.local_world_size
    cross = world_crosses_hosts(c)
    intra = comms_ms(c, out_bytes * (local - 1) / local, local, False)
    inter = comms_ms(c, out_bytes / local, c.world_size // local, True) if cross else 0.0
    out_comms = intra + inter
    return ShardCost(
        fwd_compute=fwd_compute,
        fwd_comms=comms_ms(c, in_bytes, c.world_size, cross) + out_comms,
        bwd_compute=bwd_compute_ms(c, fwd_compute),
        bwd_comms=out_comms,
        input_bytes=in_bytes,
        output_bytes=out_bytes,
    )
