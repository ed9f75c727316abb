"""Header-only shapes, row-range reads, chunked writes and truncated files."""

import os

import numpy as np
import pytest

from recsys_lib.datasets._npy_io import NpyWriter
from recsys_lib.datasets.criteo import BinaryCriteoUtils
from recsys_lib.datasets.utils import get_path_manager
from tests.datasets.criteo_files import npy_bytes


@pytest.fixture
def arr_file(tmp_path):
    arr = np.arange(40 * 3, dtype=np.int64).reshape(40, 3) * 7
    path = str(tmp_path / "a.npy")
    np.save(path, arr)
    return arr, path


def test_shape_from_header(arr_file):
    arr, path = arr_file
    assert BinaryCriteoUtils.get_shape_from_npy(path) == (40, 3)


@pytest.mark.parametrize("mmap_mode", [False, True])
@pytest.mark.parametrize("start,n", [(0, 40), (5, 3), (39, 1), (10, 0)])
def test_load_range_equals_slice(arr_file, mmap_mode, start, n):
    arr, path = arr_file
    got = BinaryCriteoUtils.load_npy_range(path, start, n, mmap_mode=mmap_mode)
    np.testing.assert_array_equal(got, arr[start : start + n])
    assert got.dtype == arr.dtype


@pytest.mark.parametrize("mmap_mode", [False, True])
def test_out_of_range(arr_file, mmap_mode):
    _, path = arr_file
    with pytest.raises(ValueError, match=r"a.npy: rows \[38, 41\) out of range"):
        BinaryCriteoUtils.load_npy_range(path, 38, 3, mmap_mode=mmap_mode)


@pytest.mark.parametrize("mmap_mode", [False, True])
def test_truncated_file_names_the_file(arr_file, mmap_mode):
    _, path = arr_file
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 10)
    with pytest.raises(ValueError, match=r"a.npy: truncated .npy file"):
        BinaryCriteoUtils.load_npy_range(path, 30, 10, mmap_mode=mmap_mode)
    # rows before the cut are still readable without mmap
    assert BinaryCriteoUtils.load_npy_range(path, 0, 2).shape == (2, 3)


def test_not_an_npy(tmp_path):
    p = tmp_path / "x.npy"
    p.write_bytes(b"hello world, not numpy")
    with pytest.raises(ValueError, match="x.npy: not a readable .npy"):
        BinaryCriteoUtils.get_shape_from_npy(str(p))


@pytest.mark.parametrize("dtype,row_shape", [(np.float32, (13,)), (np.int32, (1,)), (np.int64, (26,))])
def test_writer_is_byte_identical_to_np_save(tmp_path, dtype, row_shape):
    rng = np.random.default_rng(0)
    full = (rng.standard_normal((37,) + row_shape) * 1000).astype(dtype)
    path = str(tmp_path / "w.npy")
    with NpyWriter(path, dtype, row_shape, get_path_manager()) as w:
        assert not os.path.exists(path)  # only published when complete
        for lo in range(0, 37, 10):
            w.write(full[lo : lo + 10])
    assert open(path, "rb").read() == npy_bytes(full)
    assert os.listdir(tmp_path) == ["w.npy"]


def test_writer_abort_leaves_nothing(tmp_path):
    path = str(tmp_path / "w.npy")
    with pytest.raises(RuntimeError):
        with NpyWriter(path, np.float32, (2,), get_path_manager()) as w:
            w.write(np.zeros((3, 2), np.float32))
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"chunk rows have shape \(3,\), expected \(2,\)"):
        with NpyWriter(path, np.float32, (2,), get_path_manager()) as w:
            w.write(np.zeros((1, 3), np.float32))
