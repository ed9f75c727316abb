import numpy as np
import pytest

from recsys_lib.datasets.scripts import contiguous_preproc_criteo


def test_cli_remaps_every_sparse_file(tmp_path):
    src, out = tmp_path / "npy", tmp_path / "contig"
    src.mkdir()
    a = np.array([[5] * 26, [5] * 26, [9] * 26], dtype=np.int64)
    np.save(src / "day_0_sparse.npy", a)
    np.save(src / "day_1_sparse.npy", a[:1])
    np.save(src / "day_0_dense.npy", np.zeros((3, 13), np.float32))  # not a sparse file: ignored
    contiguous_preproc_criteo.main(["--input_dir", str(src), "--output_dir", str(out), "--frequency_threshold", "2",
                                    "--no_progress"])
    assert sorted(p.name for p in out.iterdir()) == ["day_0_sparse_contig_freq.npy", "day_1_sparse_contig_freq.npy"]
    # 5 occurs 3 times (kept → 2), 9 once (rare → 1)
    assert np.load(out / "day_0_sparse_contig_freq.npy")[:, 0].tolist() == [2, 2, 1]
    assert np.load(out / "day_1_sparse_contig_freq.npy")[:, 7].tolist() == [2]


def test_cli_without_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="no \\*_sparse.npy files"):
        contiguous_preproc_criteo.main(["--input_dir", str(tmp_path), "--output_dir", str(tmp_path / "o")])
