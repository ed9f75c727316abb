"""Shared vocabulary of the per-strategy planner cost terms (``sharding/<x>_sharding/cost.py``).

Each strategy's ``cost.py`` is a pure function ``shard_cost(c: ShardCostInputs) -> ShardCost`` (how the
partitioner places its shards is the registry's ``partition_by``). The estimators build the inputs from a
sharding option and the topology and never branch on the sharding type.

Model (units: bytes, bytes/ms, ms). With per-rank batch ``B``, world ``W``, feature ``f`` pooling factor
``P_f`` and poolings ``N_f``:

* global ids of the table ``I = sum_f B_f * W * P_f * N_f``; global pooled outputs ``O = sum_f B_f * W * N_f``
  (sequence modules: ``O = I``, one vector per id);
* lookup = (ids x (D x table bytes + id bytes) + outputs x D x output bytes) / kernel bandwidth, x a
  block penalty when the shard is narrower than 128 columns (``HALF_BLOCK_PENALTY``/``QUARTER_BLOCK_PENALTY``);
* backward compute = forward compute x ``bwd_compute_multiplier`` (x the weighted-feature multiplier);
* a collective moves its bytes at ``intra_host_bw`` when it stays on one host, else ``inter_host_bw``;
  nothing is communicated when ``W == 1``.
"""

from typing import NamedTuple, Tuple

from recsys_lib.distributed.planner.constants import (
    BIGINT_DTYPE,
    FULL_BLOCK_EMB_DIM,
    HALF_BLOCK_PENALTY,
    LENGTH_DTYPE,
    QUARTER_BLOCK_PENALTY,
)


class ShardCostInputs(NamedTuple):
    """Everything a strategy's cost terms may use about one shard (plain numbers, no tensors).

    A ``NamedTuple`` (cheap to build: the enumerator makes one per distinct shard size of every option).
    """

    table_rows: int
    table_cols: int
    shard_rows: int
    shard_cols: int
    world_size: int
    local_world_size: int
    batch_sizes: Tuple[int, ...]  # per feature, per rank
    pooling_factors: Tuple[float, ...]  # per feature
    num_poolings: Tuple[float, ...]  # per feature
    is_pooled: bool
    is_weighted: bool
    kernel_bw: float
    intra_host_bw: float
    inter_host_bw: float
    bwd_compute_multiplier: float
    weighted_feature_bwd_compute_multiplier: float
    table_dtype_size: int = 4
    output_dtype_size: int = 4
    input_dtype_size: int = BIGINT_DTYPE


class ShardCost(NamedTuple):
    """Per-shard estimate: the four perf terms (ms) and the shard's input/output buffer bytes."""

    fwd_compute: float
    fwd_comms: float
    bwd_compute: float
    bwd_comms: float
    input_bytes: float
    output_bytes: float


def global_ids(c: ShardCostInputs) -> float:
    """Ids of this table in one global batch (all ranks)."""
    return sum(b * c.world_size * p * n for b, p, n in zip(c.batch_sizes, c.pooling_factors, c.num_poolings))


def global_samples(c: ShardCostInputs) -> float:
    """(feature, sample) bags of this table in one global batch."""
    return sum(b * c.world_size * n for b, n in zip(c.batch_sizes, c.num_poolings))


def global_outputs(c: ShardCostInputs) -> float:
    """Embedding vectors this table returns per global batch: one per bag (pooled) or per id (sequence)."""
    return global_samples(c) if c.is_pooled else global_ids(c)


def block_penalty(cols: int) -> float:
    """Kernels run full vector blocks of 128 columns; narrower shards waste part of each block."""
    if cols >= FULL_BLOCK_EMB_DIM:
        return 1.0
    if cols >= FULL_BLOCK_EMB_DIM // 2:
        return HALF_BLOCK_PENALTY
    return QUARTER_BLOCK_PENALTY


def lookup_ms(c: ShardCostInputs, ids: float, outputs: float) -> float:
    """Forward kernel time for ``ids`` looked-up rows producing ``outputs`` vectors of ``shard_cols``."""
    nbytes = ids * (c.shard_cols * c.table_dtype_size + c.input_dtype_size) + outputs * c.shard_cols * c.output_dtype_size
    return nbytes / c.kernel_bw * block_penalty(c.shard_cols)


def bwd_compute_ms(c: ShardCostInputs, fwd_compute: float) -> float:
    mult = c.bwd_compute_multiplier
    if c.is_weighted:
        mult *= c.weighted_feature_bwd_compute_multiplier
    return fwd_compute * mult


def comms_ms(c: ShardCostInputs, nbytes: float, group_size: int, crosses_hosts: bool) -> float:
    """Time to move ``nbytes`` in a collective over ``group_size`` ranks (0 for a group of one)."""
    if group_size <= 1 or nbytes <= 0:
        return 0.0
    return nbytes / (c.inter_host_bw if crosses_hosts else c.intra_host_bw)


def world_crosses_hosts(c: ShardCostInputs) -> bool:
    return c.world_size > c.local_world_size


def id_bytes(c: ShardCostInputs, ids: float) -> float:
    """Bytes of an input dist carrying ``ids`` ids plus the global lengths."""
    return ids * c.input_dtype_size + global_samples(c) * LENGTH_DTYPE


def output_bytes(c: ShardCostInputs, vectors: float) -> float:
    return vectors * c.shard_cols * c.output_dtype_size


def routed_shard_cost(
    c: ShardCostInputs, ids: float, fwd_compute: float, out_bytes: float, out_comms: float
) -> ShardCost:
    """Cost of a shard whose ``ids`` arrive by one input dist over the world and whose ``out_bytes`` of
    outputs take ``out_comms`` ms to move back (their gradients the same in backward)."""
    in_bytes = id_bytes(c, ids)
    return ShardCost(
        fwd_compute=fwd_compute,
        fwd_comms=comms_ms(c, in_bytes, c.world_size, world_crosses_hosts(c)) + out_comms,
        bwd_compute=bwd_compute_ms(c, fwd_compute),
        bwd_comms=out_comms,
        input_bytes=in_bytes,
        output_bytes=out_bytes,
    )
