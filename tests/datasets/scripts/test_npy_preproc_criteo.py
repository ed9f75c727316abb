"""End to end through the three CLI scripts on a tiny 1TB-layout dataset; resume skips finished days."""

import os

import numpy as np

from recsys_lib.datasets.scripts import contiguous_preproc_criteo, npy_preproc_criteo, shuffle_preproc_criteo
from tests.datasets.criteo_files import make_rows, npy_bytes, reference_arrays, write_tsv


def test_criteo_1tb_pipeline_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(npy_preproc_criteo, "DAYS", 3)
    tsv, npy, contig, shuf = (tmp_path / d for d in ("tsv", "npy", "contig", "shuf"))
    tsv.mkdir()
    days = [make_rows(n, seed=d) for d, n in enumerate((12, 9, 10))]
    for d, rows in enumerate(days):
        write_tsv(tsv / f"day_{d}", rows)
    npy_preproc_criteo.main(["--input_dir", str(tsv), "--output_dir", str(npy), "--chunk_rows", "4", "--no_progress"])
    for d, rows in enumerate(days):
        for part, ref in zip(("dense", "sparse", "labels"), reference_arrays(rows)):
            assert (npy / f"day_{d}_{part}.npy").read_bytes() == npy_bytes(ref)
    stamp = os.stat(npy / "day_1_dense.npy").st_mtime_ns
    os.remove(npy / "day_2_labels.npy")
    npy_preproc_criteo.main(["--input_dir", str(tsv), "--output_dir", str(npy), "--no_progress"])
    assert os.stat(npy / "day_1_dense.npy").st_mtime_ns == stamp  # finished day skipped
    assert (npy / "day_2_labels.npy").exists()  # unfinished day redone

    contiguous_preproc_criteo.main(["--input_dir", str(npy), "--output_dir", str(contig), "--frequency_threshold", "2",
                                    "--no_progress"])
    ids = np.concatenate([np.load(contig / f"day_{d}_sparse_contig_freq.npy") for d in range(3)])
    assert ids.shape == (31, 26) and ids.min() == 1

    shuffle_preproc_criteo.main(["--input_dir_labels_and_dense", str(npy), "--input_dir_sparse", str(contig),
                                 "--output_dir_shuffled", str(shuf), "--days", "3", "--random_seed", "5",
                                 "--no_progress"])
    assert [np.load(shuf / f"day_{d}_dense.npy").shape[0] for d in range(3)] == [12, 9, 10]
    np.testing.assert_array_equal(np.load(shuf / "day_2_sparse.npy"), np.load(contig / "day_2_sparse_contig_freq.npy"))


def test_kaggle_train_and_test(tmp_path):
    write_tsv(tmp_path / "train.txt", make_rows(8, seed=1))
    write_tsv(tmp_path / "test.txt", make_rows(5, seed=2, with_label=False))
    out = tmp_path / "out"
    npy_preproc_criteo.main(["--input_dir", str(tmp_path), "--output_dir", str(out), "--dataset_name", "criteo_kaggle",
                             "--no_progress"])
    assert np.load(out / "train_dense.npy").shape == (8, 13)
    assert np.load(out / "test_labels.npy").tolist() == [[-1]] * 5  # TorchRec's fake label
