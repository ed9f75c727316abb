"""Planner cost terms of row-wise sharding (pure; model in ``planner/_cost_terms.py``).

A shard holding ``shard_rows`` of ``table_rows`` rows sees that fraction of the ids (ids are assumed
spread evenly over rows). Every rank first bucketizes its local ids by row block; the shard then
writes a partial pooled vector for every bag of the global batch, and a reduce-scatter over all
ranks sums them (``(W-1)/W`` of the buffer leaves each rank). Sequence modules send each id's vector
back by an all-to-all instead.
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


def row_fraction(c: ShardCostInputs) -> float:
    return c.shard_rows / c.table_rows if c.table_rows > 0 else 0.0


def bucketize_ms(c: ShardCostInputs) -> float:
    """Reading and writing this rank's ids once to split them by row block."""
    local_ids = global_ids(c) / c.world_size
    return 2.0 * local_ids * c.input_dtype_size / c.kernel_bw


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c) * row_fraction(c)
    outs = global_outputs(c) if c.is_pooled else ids
    out_bytes = output_bytes(c, outs)
    moved = out_bytes * (c.world_size - 1) / c.world_size if c.is_pooled else out_bytes
    out_comms = comms_ms(c, moved, c.world_size, world_crosses_hosts(c))
    return routed_shard_cost(c, ids, lookup_ms(c, ids, outs) + bucketize_ms(c), out_bytes, out_comms)
