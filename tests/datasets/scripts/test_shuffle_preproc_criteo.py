import numpy as np

from recsys_lib.datasets.scripts import shuffle_preproc_criteo


def test_cli_reads_rows_per_day_from_labels(tmp_path):
    src, out, full = tmp_path / "npy", tmp_path / "shuf", tmp_path / "full"
    src.mkdir()
    start = 0
    for d, n in enumerate((4, 6, 3)):
        ids = np.arange(start, start + n)
        np.save(src / f"day_{d}_labels.npy", (ids % 2).astype(np.int32).reshape(-1, 1))
        np.save(src / f"day_{d}_dense.npy", np.repeat(ids[:, None], 13, 1).astype(np.float32))
        np.save(src / f"day_{d}_sparse_contig_freq.npy", np.repeat(ids[:, None], 26, 1))
        start += n
    shuffle_preproc_criteo.main(["--input_dir_labels_and_dense", str(src), "--input_dir_sparse", str(src),
                                 "--output_dir_shuffled", str(out), "--output_dir_full_set", str(full),
                                 "--days", "3", "--no_progress"])
    sizes = [np.load(out / f"day_{d}_sparse.npy").shape[0] for d in range(3)]
    assert sizes == [4, 6, 3]
    assert np.load(full / "full_dense.npy")[:, 0].astype(int).tolist() == list(range(13))  # unshuffled, all days
    assert np.load(out / "day_2_dense.npy")[:, 0].tolist() == [10, 11, 12]
