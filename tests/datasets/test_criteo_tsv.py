"""TSV → npy: byte-identical to the documented whole-array numerics, streamed, atomic, clear errors."""

import os

import numpy as np
import pytest

from recsys_lib.datasets.criteo import BinaryCriteoUtils, tsv_to_npys_chunked
from tests.datasets.criteo_files import make_rows, npy_bytes, reference_arrays, write_tsv


def _convert(tmp_path, name, dataset_name="criteo_1tb", **kw):
    outs = [str(tmp_path / f"out_{p}.npy") for p in ("dense", "sparse", "labels")]
    n = tsv_to_npys_chunked(str(tmp_path / name), *outs, dataset_name=dataset_name, progress=False, **kw)
    return n, outs


@pytest.mark.parametrize("chunk_rows", [1, 7, 500])
def test_matches_reference_bytes(tmp_path, chunk_rows):
    rows = make_rows(301, seed=chunk_rows)
    rows[5] = [""] * 40  # a row with every field missing
    write_tsv(tmp_path / "day_0", rows)
    n, outs = _convert(tmp_path, "day_0", chunk_rows=chunk_rows)
    assert n == 301
    for path, ref in zip(outs, reference_arrays(rows)):
        assert open(path, "rb").read() == npy_bytes(ref)
    dense = np.load(outs[0])
    assert dense.dtype == np.float32 and dense.shape == (301, 13)
    np.testing.assert_allclose(dense.min(), np.log(2.0), rtol=1e-6)  # the file minimum maps to log(2)
    assert np.load(outs[2]).shape == (301, 1) and np.load(outs[1]).dtype == np.int64
    assert sorted(os.listdir(tmp_path)) == ["day_0", "out_dense.npy", "out_labels.npy", "out_sparse.npy"]


def test_hand_computed_row(tmp_path):
    row = ["1", "0", "", "-2", *["5"] * 10, "ff", "", *["0a"] * 24]
    write_tsv(tmp_path / "day_0", [row])
    _, (d, s, l) = _convert(tmp_path, "day_0")
    # min is -2 → shift by -4: 0→4, ""→0→4, -2→2, 5→9
    np.testing.assert_array_equal(np.load(d)[0], np.log(np.array([4, 4, 2] + [9] * 10, dtype=np.float32)))
    np.testing.assert_array_equal(np.load(s)[0], [255, 0] + [10] * 24)
    assert np.load(l).tolist() == [[1]]


def test_kaggle_test_file_gets_fake_label(tmp_path):
    rows = make_rows(20, seed=3, with_label=False)
    write_tsv(tmp_path / "test.txt", rows)
    _, outs = _convert(tmp_path, "test.txt", dataset_name="criteo_kaggle")
    for path, ref in zip(outs, reference_arrays(rows, with_label=False)):
        assert open(path, "rb").read() == npy_bytes(ref)
    assert (np.load(outs[2]) == -1).all()


def _assert_no_outputs(tmp_path):
    assert [f for f in os.listdir(tmp_path) if f.startswith("out_")] == []


@pytest.mark.parametrize("line,field,match", [
    (3, None, r"day_0:4: expected 40 tab-separated columns, got 39"),
    (2, (5, "1.5"), r"day_0:3: column 5 \(dense\) is '1.5', expected an integer"),
    (0, (20, "zz"), r"day_0:1: column 20 \(sparse\) is 'zz', expected a hex id"),
    (1, (0, "yes"), r"day_0:2: column 0 \(label\) is 'yes'"),
])
def test_corrupt_rows_name_file_and_line(tmp_path, line, field, match):
    rows = make_rows(6, seed=9)
    if field is None:
        rows[line] = rows[line][:-1]
    else:
        rows[line][field[0]] = field[1]
    write_tsv(tmp_path / "day_0", rows)
    with pytest.raises(ValueError, match=match):
        _convert(tmp_path, "day_0", chunk_rows=2)
    _assert_no_outputs(tmp_path)  # neither final nor partial files are left behind


def test_empty_file_and_bad_dataset_name(tmp_path):
    (tmp_path / "day_0").write_text("")
    with pytest.raises(ValueError, match="day_0: no rows"):
        _convert(tmp_path, "day_0")
    _assert_no_outputs(tmp_path)
    with pytest.raises(ValueError, match="dataset_name"):
        _convert(tmp_path, "day_0", dataset_name="criteo")


def test_replaces_older_outputs(tmp_path):
    rows = make_rows(10, seed=4)
    write_tsv(tmp_path / "day_0", rows)
    (tmp_path / "out_dense.npy").write_bytes(b"stale")
    _, outs = _convert(tmp_path, "day_0")
    assert open(outs[0], "rb").read() == npy_bytes(reference_arrays(rows)[0])


def test_torchrec_signature_method_writes_the_reference_bytes(tmp_path):
    rows = make_rows(40, seed=3)
    write_tsv(tmp_path / "day_0", rows)
    outs = [str(tmp_path / f"m_{p}.npy") for p in ("dense", "sparse", "labels")]
    assert BinaryCriteoUtils.tsv_to_npys(str(tmp_path / "day_0"), *outs) is None  # TorchRec returns nothing
    for path, ref in zip(outs, reference_arrays(rows)):
        assert open(path, "rb").read() == npy_bytes(ref)
