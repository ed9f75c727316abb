import pytest

from recsys_lib.distributed.sharding.rw_sharding import cost as rw_cost
from recsys_lib.distributed.sharding.twrw_sharding import cost as twrw_cost
from tests.distributed.planner._inputs import inputs


def test_row_wise_cost_by_hand():
    # half the rows → half of the 12 global ids; partial sums for all 4 bags; reduce-scatter moves (W-1)/W
    c = rw_cost.shard_cost(inputs(shard_rows=5))
    ids, bags = 6, 4
    lookup = (ids * (128 * 4 + 8) + bags * 128 * 4) / 1000.0
    bucketize = 2 * (12 / 2) * 8 / 1000.0
    assert c.fwd_compute == pytest.approx(lookup + bucketize)
    in_bytes, out_bytes = ids * 8 + bags * 4, bags * 128 * 4
    assert c.fwd_comms == pytest.approx((in_bytes + out_bytes / 2) / 100.0)
    assert c.bwd_comms == pytest.approx(out_bytes / 2 / 100.0)


def test_row_wise_sequence_sends_one_vector_per_id():
    c = rw_cost.shard_cost(inputs(shard_rows=5, is_pooled=False))
    assert c.output_bytes == 6 * 128 * 4
    assert c.bwd_comms == pytest.approx(6 * 128 * 4 / 100.0)


def test_table_row_wise_reduces_inside_the_host_then_crosses():
    # W=4 on 2 hosts: intra-host reduce-scatter of (L-1)/L, then 1/L across hosts
    c = twrw_cost.shard_cost(inputs(world_size=4, local_world_size=2, shard_rows=5))
    out_bytes = 8 * 128 * 4
    assert c.bwd_comms == pytest.approx(out_bytes / 2 / 100.0 + out_bytes / 2 / 10.0)
