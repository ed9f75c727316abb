import pytest

from recsys_lib.distributed.planner.constants import DDR_CAP, HBM_CAP
from recsys_lib.distributed.planner.storage_reservations import (
    FixedPercentageStorageReservation,
    HeuristicalStorageReservation,
    InferenceStorageReservation,
)
from recsys_lib.distributed.planner.types import ParameterConstraints, PlannerError, PlannerErrorType, Topology
from tests.distributed.planner._helpers import EbcTestSharder, TwoTower

DENSE_BYTES = (16 * 8 + 8) * 4  # nn.Linear(16, 8) weight + bias, fp32


def test_fixed_percentage_takes_a_share_of_every_device():
    topo = Topology(world_size=2, compute_device="cuda")
    res = FixedPercentageStorageReservation(0.25)
    out = res.reserve(topo, 512, TwoTower([10], [8]), [EbcTestSharder()])
    assert [d.storage.hbm for d in out.devices] == [int(HBM_CAP * 0.75)] * 2
    assert out.devices[0].storage.ddr == DDR_CAP  # accelerator: only HBM is reserved
    assert res.last_reserved_topology is out and topo.devices[0].storage.hbm == HBM_CAP  # input untouched


def test_heuristic_reserves_headroom_dense_params_and_inputs():
    topo = Topology(world_size=2, compute_device="cuda")
    pcs = {"t1": ParameterConstraints(pooling_factors=[3.0])}
    out = HeuristicalStorageReservation(0.15).reserve(topo, 100, TwoTower([10, 20], [8, 8]), [EbcTestSharder()], pcs)
    kjt = 2 * (100 * (1.0 * 8 + 4) + 100 * (3.0 * 8 + 4))  # two batches in flight: ids (int64) + lengths (int32)
    assert out.devices[1].storage.hbm == int(HBM_CAP * 0.85) - int(DENSE_BYTES * 6.0) - int(kjt)


def test_cpu_reserves_ddr_and_inference_counts_dense_once():
    topo = Topology(world_size=1, compute_device="cpu")
    out = InferenceStorageReservation(0.0).reserve(topo, 1, TwoTower([10], [8]), [EbcTestSharder()])
    assert out.devices[0].storage.ddr == DDR_CAP - DENSE_BYTES - 2 * (8 + 4)
    est = HeuristicalStorageReservation(0.0, dense_tensor_estimate=1000).reserve(topo, 1, TwoTower([10], [8]),
                                                                                 [EbcTestSharder()])
    assert est.devices[0].storage.ddr == DDR_CAP - 1000 - 2 * (8 + 4)


def test_reservation_that_leaves_nothing_raises():
    topo = Topology(world_size=1, compute_device="cuda", hbm_cap=1000)
    with pytest.raises(PlannerError, match="short by") as e:
        HeuristicalStorageReservation(0.5).reserve(topo, 512, TwoTower([10], [8]), [EbcTestSharder()])
    assert e.value.error_type == PlannerErrorType.INSUFFICIENT_STORAGE
    with pytest.raises(ValueError, match="percentage"):
        FixedPercentageStorageReservation(1.5)
