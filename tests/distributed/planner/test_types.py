import copy

import pytest

from recsys_lib.distributed.planner.calibration import CpuCalibration, default_cpu_calibration
from recsys_lib.distributed.planner.constants import DDR_CAP, HBM_CAP, INTRA_NODE_BANDWIDTH
from recsys_lib.distributed.planner.types import (
    ParameterConstraints,
    Perf,
    PlannerError,
    PlannerErrorType,
    Shard,
    ShardingOption,
    Storage,
    Topology,
)
from tests.distributed.planner._helpers import make_ebc


def test_storage_and_perf_arithmetic():
    a, b = Storage(hbm=3, ddr=5), Storage(hbm=1, ddr=2)
    assert a + b == Storage(4, 7) and a - b == Storage(2, 3)
    assert b.fits_in(a) and not a.fits_in(b) and not Storage(0, 6).fits_in(a)
    p = Perf(1.0, 2.0, 3.0, 4.0) + Perf(0.5, 0.5, 0.5, 0.5, prefetch_compute=1.0)
    assert p.total == pytest.approx(13.0)


def test_topology_defaults_and_validation():
    cuda = Topology(world_size=4, compute_device="cuda", local_world_size=2)
    assert [d.rank for d in cuda.devices] == [0, 1, 2, 3]
    assert cuda.devices[0].storage == Storage(hbm=HBM_CAP, ddr=DDR_CAP, ssd=2048 * 1024**3)
    assert cuda.num_hosts == 2 and cuda.intra_host_bw == INTRA_NODE_BANDWIDTH
    assert Topology(world_size=2, compute_device="cpu").devices[1].storage.hbm == 0
    with pytest.raises(ValueError, match="compute_device"):
        Topology(world_size=2, compute_device="tpu")
    with pytest.raises(ValueError, match="local_world_size 3"):
        Topology(world_size=4, compute_device="cuda", local_world_size=3)


def test_cpu_topology_uses_the_calibrated_constants():
    cal = default_cpu_calibration()
    topo = Topology(world_size=2, compute_device="cpu")
    assert topo.intra_host_bw == cal.intra_host_bw and topo.inter_host_bw == cal.inter_host_bw
    assert topo.kernel_bw("fused") == cal.fused_kernel_bw and topo.kernel_bw("dense") == cal.dense_kernel_bw
    assert topo.bwd_compute_multiplier == cal.bwd_compute_multiplier
    assert topo.kernel_bw("fused_uvm") is None  # no UVM on cpu
    # explicit values win over the calibration
    assert Topology(world_size=2, compute_device="cpu", intra_host_bw=123.0).intra_host_bw == 123.0


def test_topology_loads_a_calibration_file(tmp_path):
    cal = CpuCalibration(fused_kernel_bw=10.0, dense_kernel_bw=5.0, bwd_compute_multiplier=3.0,
                         intra_host_bw=7.0, inter_host_bw=1.0)
    path = str(tmp_path / "cal.json")
    cal.save(path)
    topo = Topology(world_size=2, compute_device="cpu").set_calibration(path)
    assert topo.kernel_bw("dense") == 5.0 and topo.intra_host_bw == 7.0 and topo.calibration == cal
    # explicitly given constants win over the calibration; the default calibration can be put back
    given = Topology(world_size=2, compute_device="cpu", intra_host_bw=3.0).set_calibration(cal)
    assert given.intra_host_bw == 3.0 and given.inter_host_bw == 1.0 and given.bwd_compute_multiplier == 3.0
    back = Topology(world_size=2, compute_device="cpu")
    assert topo.set_calibration(back.calibration).kernel_bw("dense") == back.kernel_bw("dense")
    assert topo.intra_host_bw == back.intra_host_bw


def test_deepcopy_of_topology_copies_storage():
    topo = Topology(world_size=2, compute_device="cuda")
    other = copy.deepcopy(topo)
    other.devices[0].storage.hbm = 1
    assert topo.devices[0].storage.hbm == HBM_CAP


def test_sharding_option_properties_and_deepcopy():
    ebc = make_ebc([10], [8])
    weight = ebc.embedding_bags["t0"].weight
    shards = [Shard([5, 8], [0, 0], Storage(10, 0), Perf(1, 1, 1, 1), rank=0),
              Shard([5, 8], [5, 0], Storage(20, 0), Perf(2, 0, 0, 0), rank=1)]
    o = ShardingOption("t0", weight, ("sparse.ebc", ebc), [1.0], 512, "row_wise", "uniform", "fused", shards)
    assert o.fqn == "sparse.ebc.t0" and o.path == "sparse.ebc" and o.num_shards == 2 and o.num_inputs == 1
    assert o.total_storage == Storage(30, 0) and o.total_perf == 6 and o.is_pooled
    assert o.get_shards_assignment() == [0, 1]
    c = copy.deepcopy(o)
    c.shards[0].rank = 1
    assert o.shards[0].rank == 0 and c.tensor is o.tensor and c.module[1] is ebc


def test_parameter_constraints_validation():
    assert ParameterConstraints().pooling_factors == [1.0]
    with pytest.raises(ValueError, match="min_partition"):
        ParameterConstraints(min_partition=0)
    with pytest.raises(ValueError, match="batch_sizes"):
        ParameterConstraints(pooling_factors=[1.0, 2.0], batch_sizes=[1])
    e = PlannerError("x", PlannerErrorType.PARTITION)
    assert e.error_type == PlannerErrorType.PARTITION and str(e) == "x"
