import pytest

from recsys_lib.distributed.planner.constants import DP_ELEMENTWISE_KERNELS_PERF_FACTOR
from recsys_lib.distributed.sharding.dp_sharding import cost as dp_cost
from tests.distributed.planner._inputs import inputs


def test_data_parallel_cost_by_hand():
    c = dp_cost.shard_cost(inputs())
    ids, bags = 6, 2  # this rank's batch only
    lookup = (ids * (128 * 4 + 8) + bags * 128 * 4) / 1000.0
    table = 10 * 128 * 4
    assert c.fwd_comms == 0
    assert c.fwd_compute == pytest.approx(lookup)
    assert c.bwd_compute == pytest.approx(2 * lookup + table * DP_ELEMENTWISE_KERNELS_PERF_FACTOR / 1000.0)
    assert c.bwd_comms == pytest.approx(2 * table * (1 / 2) / 100.0)  # all-reduce of the dense gradient
    assert c.input_bytes == ids * 8 + bags * 4


def test_data_parallel_is_replicated():
    from recsys_lib.distributed.sharding.strategy import strategy_for

    assert strategy_for("data_parallel").replicated is True
