"""Cost inputs with round numbers, so expected costs can be computed by hand."""

from recsys_lib.distributed.planner._cost_terms import ShardCostInputs


def inputs(**overrides) -> ShardCostInputs:
    base = ShardCostInputs(
        table_rows=10, table_cols=128, shard_rows=10, shard_cols=128, world_size=2, local_world_size=2,
        batch_sizes=(2,), pooling_factors=(3.0,), num_poolings=(1.0,), is_pooled=True, is_weighted=False,
        kernel_bw=1000.0, intra_host_bw=100.0, inter_host_bw=10.0, bwd_compute_multiplier=2.0,
        weighted_feature_bwd_compute_multiplier=1.0,
    )
    return base._replace(**overrides)
