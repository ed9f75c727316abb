"""Shuffle across training days: same multiset of rows, day sizes kept, last day unchanged, seeded."""

import os

import numpy as np
import pytest

from recsys_lib.datasets.criteo import shuffle_chunked

SIZES = {0: 30, 1: 17, 2: 25, 3: 9}


def _write_days(tmp_path, sparse_name="sparse_contig_freq"):
    src = tmp_path / "src"
    src.mkdir()
    rows = 0
    for d, n in SIZES.items():
        ids = np.arange(rows, rows + n)  # row ids make every row unique and traceable
        np.save(src / f"day_{d}_labels.npy", (ids % 2).astype(np.int32).reshape(-1, 1))
        np.save(src / f"day_{d}_dense.npy", np.repeat(ids[:, None], 13, 1).astype(np.float32))
        np.save(src / f"day_{d}_{sparse_name}.npy", np.repeat(ids[:, None], 26, 1) * 3)
        rows += n
    return src


def _load(dir_, d):
    return [np.load(dir_ / f"day_{d}_{p}.npy") for p in ("labels", "dense", "sparse")]


def _run(src, out, seed=0, **kw):
    shuffle_chunked(str(src), str(src), str(out), SIZES, days=4, random_seed=seed, progress=False, **kw)


@pytest.mark.parametrize("chunk_rows,bucket_rows", [(7, 5), (1000, 1000)])
def test_keeps_rows_and_day_sizes(tmp_path, chunk_rows, bucket_rows):
    src = _write_days(tmp_path)
    out = tmp_path / "out"
    full = tmp_path / "full"
    _run(src, out, output_dir_full_set=str(full), chunk_rows=chunk_rows, bucket_rows=bucket_rows)
    all_ids = []
    for d in range(3):
        labels, dense, sparse = _load(out, d)
        assert labels.shape == (SIZES[d], 1) and dense.shape == (SIZES[d], 13) and sparse.shape == (SIZES[d], 26)
        assert labels.dtype == np.int32 and dense.dtype == np.float32 and sparse.dtype == np.int64
        ids = dense[:, 0].astype(np.int64)
        # rows stay whole: every column of a row comes from the same input row
        np.testing.assert_array_equal(labels[:, 0], ids % 2)
        np.testing.assert_array_equal(sparse, np.repeat(ids[:, None], 26, 1) * 3)
        all_ids.extend(ids.tolist())
    assert sorted(all_ids) == list(range(72))  # the multiset of training rows is unchanged
    assert all_ids != sorted(all_ids)  # ... and rows did move
    day0 = set(np.load(out / "day_0_dense.npy")[:, 0].astype(int).tolist())
    assert day0 & set(range(30, 72))  # rows crossed days
    for got, name in zip(_load(out, 3), ("labels", "dense", "sparse_contig_freq")):  # last day copied unchanged
        np.testing.assert_array_equal(got, np.load(src / f"day_3_{name}.npy"))
    # the full set is every day, unshuffled, in order
    np.testing.assert_array_equal(np.load(full / "full_dense.npy")[:, 0], np.arange(81, dtype=np.float32))
    np.testing.assert_array_equal(np.load(full / "full_labels.npy")[:, 0], np.arange(81) % 2)
    assert np.load(full / "full_sparse.npy").shape == (81, 26)
    assert sorted(os.listdir(out)) == sorted(f"day_{d}_{p}.npy" for d in range(4) for p in ("labels", "dense", "sparse"))


def test_seeded(tmp_path):
    src = _write_days(tmp_path, sparse_name="sparse")  # TorchRec's input name (the contig name is a fallback)
    _run(src, tmp_path / "a", seed=1, bucket_rows=8)
    _run(src, tmp_path / "b", seed=1, bucket_rows=8)
    _run(src, tmp_path / "c", seed=2, bucket_rows=8)
    a, b, c = (np.load(tmp_path / x / "day_1_dense.npy") for x in "abc")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_errors(tmp_path):
    src = _write_days(tmp_path)
    with pytest.raises(ValueError, match=r"day_1_labels.npy: has 17 rows, rows_per_day\[1\] = 18"):
        shuffle_chunked(str(src), str(src), str(tmp_path / "o"), {**SIZES, 1: 18}, days=4, progress=False)
    with pytest.raises(ValueError, match=r"rows_per_day has no entry for days \[3\]"):
        shuffle_chunked(str(src), str(src), str(tmp_path / "o"), {0: 30, 1: 17, 2: 25}, days=4, progress=False)
    os.remove(src / "day_2_sparse_contig_freq.npy")
    with pytest.raises(ValueError, match="day_2_sparse_contig_freq.npy exists"):
        _run(src, tmp_path / "o")


def test_every_row_equally_likely_in_every_slot(tmp_path):
    # 5 training rows in days of 3 + 2, buckets of <= 2 rows, chunks of 2: over 150 seeds each row should land
    # in the first slot of day 0 about 30 times (binomial sd ~4.9); a bias in bucket assignment shows up here.
    src = tmp_path / "src"
    src.mkdir()
    sizes = {0: 3, 1: 2, 2: 1}
    for d, n in sizes.items():
        start = 0 if d == 0 else 3 if d == 1 else 5
        ids = np.arange(start, start + n)
        np.save(src / f"day_{d}_labels.npy", np.zeros((n, 1), np.int32))
        np.save(src / f"day_{d}_dense.npy", np.repeat(ids[:, None], 13, 1).astype(np.float32))
        np.save(src / f"day_{d}_sparse.npy", np.repeat(ids[:, None], 26, 1))
    hits = np.zeros((5, 5), int)  # row id x output slot
    for seed in range(150):
        out = tmp_path / f"o{seed}"
        shuffle_chunked(str(src), str(src), str(out), sizes, days=3, random_seed=seed, chunk_rows=2,
                                  bucket_rows=2, progress=False)
        order = np.concatenate([np.load(out / f"day_{d}_dense.npy")[:, 0] for d in (0, 1)]).astype(int)
        hits[order, np.arange(5)] += 1
    assert hits.min() >= 12 and hits.max() <= 50, hits
