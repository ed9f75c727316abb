"""Criteo constants and the TSV row readers (criteo_terabyte / criteo_kaggle / CriteoIterDataPipe)."""

from recsys_lib.datasets import criteo
from tests.datasets.criteo_files import make_rows, write_tsv


def test_constants():
    assert (criteo.INT_FEATURE_COUNT, criteo.CAT_FEATURE_COUNT, criteo.DAYS) == (13, 26, 24)
    assert criteo.DEFAULT_INT_NAMES[0] == "int_0" and criteo.DEFAULT_INT_NAMES[-1] == "int_12"
    assert criteo.DEFAULT_CAT_NAMES[0] == "cat_0" and criteo.DEFAULT_CAT_NAMES[-1] == "cat_25"
    assert criteo.DEFAULT_COLUMN_NAMES == ["label"] + criteo.DEFAULT_INT_NAMES + criteo.DEFAULT_CAT_NAMES
    assert len(criteo.COLUMN_TYPE_CASTERS) == 40
    assert criteo.TOTAL_TRAINING_SAMPLES == 4195197692 and criteo.FREQUENCY_THRESHOLD == 3


def _expected(row):
    names = criteo.DEFAULT_COLUMN_NAMES[40 - len(row):]
    out = {}
    for name, v in zip(names, row):
        out[name] = v if name.startswith("cat") else (int(v) if v else 0)
    return out


def test_terabyte_rows_over_several_files(tmp_path):
    rows0, rows1 = make_rows(7, seed=1), make_rows(4, seed=2)
    write_tsv(tmp_path / "day_0", rows0)
    write_tsv(tmp_path / "day_1", rows1)
    got = list(criteo.criteo_terabyte([str(tmp_path / "day_0"), str(tmp_path / "day_1")]))
    assert got == [_expected(r) for r in rows0 + rows1]
    assert any(v == "" for r in got for v in r.values())  # missing categoricals stay ""


def test_kaggle_test_file_has_no_label(tmp_path):
    rows = make_rows(3, seed=5, with_label=False)
    write_tsv(tmp_path / "test.txt", rows)
    got = list(criteo.criteo_kaggle(str(tmp_path / "test.txt")))
    assert "label" not in got[0] and len(got[0]) == 39
    assert got == [_expected(r) for r in rows]


def test_raw_rows_and_custom_mapper(tmp_path):
    rows = make_rows(3, seed=6)
    write_tsv(tmp_path / "train.txt", rows)
    assert list(criteo.criteo_kaggle(str(tmp_path / "train.txt"), row_mapper=None)) == rows
    labels = list(criteo.CriteoIterDataPipe([str(tmp_path / "train.txt")], row_mapper=lambda r: r[0]))
    assert labels == [r[0] for r in rows]


def test_hand_written_row_missing_values(tmp_path):
    row = ["", "1", "", "-3"] + ["7"] * 10 + ["aa", ""] + ["0f"] * 24
    write_tsv(tmp_path / "day_0", [row])
    [got] = list(criteo.criteo_terabyte([str(tmp_path / "day_0")]))
    assert (got["label"], got["int_0"], got["int_1"], got["int_2"], got["int_12"]) == (0, 1, 0, -3, 7)
    assert (got["cat_0"], got["cat_1"], got["cat_25"]) == ("aa", "", "0f")
