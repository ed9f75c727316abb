import json

import pytest

from recsys_lib.distributed.planner.calibration import (
    CpuCalibration,
    default_cpu_calibration,
    measure_comms,
    measure_kernels,
)


def test_save_load_roundtrip_and_validation(tmp_path):
    cal = default_cpu_calibration()
    path = tmp_path / "c.json"
    cal.save(str(path))
    assert CpuCalibration.load(str(path)) == cal
    with pytest.raises(ValueError, match="fused_kernel_bw"):
        CpuCalibration(fused_kernel_bw=0.0, dense_kernel_bw=1.0, bwd_compute_multiplier=1.0, intra_host_bw=1.0,
                       inter_host_bw=1.0)
    path.write_text(json.dumps({"fused_kernel_bw": 1.0}))
    with pytest.raises(ValueError, match="missing keys"):
        CpuCalibration.load(str(path))


def test_kernel_bandwidths_from_calibration():
    cal = default_cpu_calibration()
    assert cal.kernel_bw("fused") == cal.fused_kernel_bw and cal.kernel_bw("dense") == cal.dense_kernel_bw
    assert cal.kernel_bw("fused_uvm") is None


def test_measure_kernels_on_this_machine():
    got = measure_kernels(num_tables=2, rows=1000, dim=16, batch=32, pooling=4, repeats=2)
    assert set(got) == {"fused_kernel_bw", "dense_kernel_bw", "bwd_compute_multiplier"}
    assert all(v > 0 for v in got.values())


@pytest.mark.slow
def test_measure_comms_with_two_gloo_ranks():
    got = measure_comms(world_size=2, nbytes=1024 * 1024, repeats=2)
    assert got["intra_host_bw"] > 0 and 0 < got["inter_host_bw"] <= got["intra_host_bw"]
