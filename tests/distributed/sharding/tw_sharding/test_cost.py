import pytest

from recsys_lib.distributed.sharding.cw_sharding import cost as cw_cost
from recsys_lib.distributed.sharding.tw_sharding import cost as tw_cost
from tests.distributed.planner._inputs import inputs


def test_table_wise_cost_by_hand():
    # B=2 per rank, W=2, pooling 3: 12 ids, 4 bags, D=128 fp32, ids int64, lengths int32
    c = tw_cost.shard_cost(inputs())
    lookup = (12 * (128 * 4 + 8) + 4 * 128 * 4) / 1000.0
    in_bytes, out_bytes = 12 * 8 + 4 * 4, 4 * 128 * 4
    assert c.fwd_compute == pytest.approx(lookup)
    assert c.bwd_compute == pytest.approx(2 * lookup)
    assert c.fwd_comms == pytest.approx((in_bytes + out_bytes) / 100.0)  # one host: intra-host link
    assert c.bwd_comms == pytest.approx(out_bytes / 100.0)
    assert (c.input_bytes, c.output_bytes) == (in_bytes, out_bytes)


def test_table_wise_cross_host_uses_inter_host_bandwidth():
    c = tw_cost.shard_cost(inputs(world_size=4, local_world_size=2))
    out_bytes = 8 * 128 * 4  # 4 ranks x 2 bags
    assert c.bwd_comms == pytest.approx(out_bytes / 10.0)


def test_single_rank_has_no_comms_and_narrow_shards_pay_block_penalty():
    c = tw_cost.shard_cost(inputs(world_size=1, local_world_size=1))
    assert c.fwd_comms == 0 and c.bwd_comms == 0
    narrow = tw_cost.shard_cost(inputs(shard_cols=32, table_cols=32))
    assert narrow.fwd_compute == pytest.approx((12 * (32 * 4 + 8) + 4 * 32 * 4) / 1000.0 * 1.75)


def test_column_block_costs_like_a_table_of_that_width():
    block = inputs(table_cols=256, shard_cols=128)
    assert cw_cost.shard_cost(block) == tw_cost.shard_cost(block)
