"""Planner cost terms of data-parallel sharding (pure; model in ``planner/_cost_terms.py``).

Every rank holds the whole table and looks up only its own batch: no forward communication. In
backward the dense gradient of the whole table is all-reduced (``2 (W-1)/W`` of its bytes per rank)
and the optimizer touches every element (``DP_ELEMENTWISE_KERNELS_PERF_FACTOR`` passes over the table).
"""

from recsys_lib.distributed.planner._cost_terms import (
    ShardCost,
    ShardCostInputs,
    bwd_compute_ms,
    comms_ms,
    global_ids,
    global_outputs,
    global_samples,
    id_bytes,
    lookup_ms,
    output_bytes,
    world_crosses_hosts,
)
from recsys_lib.distributed.planner.constants import DP_ELEMENTWISE_KERNELS_PERF_FACTOR, LENGTH_DTYPE


def shard_cost(c: ShardCostInputs) -> ShardCost:
    ids = global_ids(c) / c.world_size
    outs = global_outputs(c) / c.world_size
    fwd_compute = lookup_ms(c, ids, outs)
    table_bytes = float(c.table_rows * c.table_cols * c.table_dtype_size)
    optimizer_ms = table_bytes * DP_ELEMENTWISE_KERNELS_PERF_FACTOR / c.kernel_bw
    allreduce_bytes = 2.0 * table_bytes * (c.world_size - 1) / c.world_size
    return ShardCost(
        fwd_compute=fwd_compute,
        fwd_comms=0.0,
        bwd_compute=bwd_compute_ms(c, fwd_compute) + optimizer_ms,
        bwd_comms=comms_ms(c, allreduce_bytes, c.world_size, world_crosses_hosts(c)),
        input_bytes=id_bytes(c, ids) - global_samples(c) * LENGTH_DTYPE * (c.world_size - 1) / c.world_size,
        output_bytes=output_bytes(c, outs),
    )
