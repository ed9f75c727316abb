"""The C++ program (examples/inference) loads the scripted quantized DLRM and returns Python's outputs exactly.

Builds with cmake + g++ against the torch wheel's libtorch: ~80 s on 2 cores, hence ``slow``.
"""

import importlib.util
import pathlib
import shutil

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_cpp_outputs_equal_python(tmp_path):
    missing = [tool for tool in ("cmake", "g++") if shutil.which(tool) is None]
    assert not missing, "the C++ loader test needs " + str(missing) + " installed (apt-get install cmake g++)"
    spec = importlib.util.spec_from_file_location("run_cpp_inference", ROOT / "examples/inference/run_cpp_inference.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    result = script.main(["--workdir", str(tmp_path)])
    want, got = result["python"], result["cpp"]
    assert sorted(got) == ["default"]
    assert got["default"].shape == want["default"].shape == (7,)
    assert torch.equal(got["default"], want["default"])
