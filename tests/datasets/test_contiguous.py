"""Contiguous remapping: a per-feature bijection on kept ids, rare ids → 0, streamed over several files."""

import collections
import os

import numpy as np
import pytest

from recsys_lib.datasets._contiguous import merge_counts
from recsys_lib.datasets.criteo import BinaryCriteoUtils


def _files(tmp_path, seed=0, sizes=(23, 40, 7), cols=4):
    rng = np.random.default_rng(seed)
    arrays, paths = [], []
    for i, n in enumerate(sizes):
        # skewed ids so some are frequent and some rare
        a = (rng.zipf(1.6, size=(n, cols)) * 1000003 % 2**32).astype(np.int64)
        p = str(tmp_path / f"day_{i}_sparse.npy")
        np.save(p, a)
        arrays.append(a)
        paths.append(p)
    return arrays, paths


def _reference_maps(arrays, threshold):
    full = np.concatenate(arrays)
    maps = []
    for c in range(full.shape[1]):
        counts = collections.Counter(full[:, c].tolist())
        kept = sorted(v for v, n in counts.items() if n >= threshold or threshold <= 1)
        start = 1 if threshold > 1 else 0
        m = {v: start + i for i, v in enumerate(kept)}
        maps.append({v: m.get(v, 0) for v in counts})
    return maps


@pytest.mark.parametrize("threshold,chunk_rows", [(3, 5), (1, 4), (0, 1000), (2, 1)])
def test_matches_reference_mapping(tmp_path, threshold, chunk_rows):
    arrays, paths = _files(tmp_path)
    out = tmp_path / "out"
    BinaryCriteoUtils.sparse_to_contiguous(paths, str(out), frequency_threshold=threshold, columns=4,
                                           chunk_rows=chunk_rows, progress=False)
    maps = _reference_maps(arrays, threshold)
    for i, a in enumerate(arrays):
        got = np.load(out / f"day_{i}_sparse_contig_freq.npy")
        expected = np.array([[maps[c][v] for c, v in enumerate(row)] for row in a.tolist()], dtype=np.int64)
        np.testing.assert_array_equal(got, expected)
    full_in, full_out = np.concatenate(arrays), np.concatenate([np.load(out / f"day_{i}_sparse_contig_freq.npy") for i in range(3)])
    for c in range(4):
        kept = full_out[:, c] != 0 if threshold > 1 else np.ones(len(full_out), bool)
        pairs = set(zip(full_in[kept, c].tolist(), full_out[kept, c].tolist()))
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)  # bijection
        ids = sorted({b for _, b in pairs})
        assert ids == list(range(ids[0], ids[0] + len(ids)))  # contiguous
    if threshold == 3:
        assert (full_out == 0).any() and (full_out > 0).any()


def test_skips_existing_outputs_and_rejects_bad_shapes(tmp_path):
    _, paths = _files(tmp_path)
    out = tmp_path / "out"
    BinaryCriteoUtils.sparse_to_contiguous(paths, str(out), columns=4, progress=False)
    target = out / "day_1_sparse_contig_freq.npy"
    before = os.stat(target).st_mtime_ns
    os.remove(out / "day_0_sparse_contig_freq.npy")
    BinaryCriteoUtils.sparse_to_contiguous(paths, str(out), columns=4, progress=False)
    assert os.stat(target).st_mtime_ns == before and (out / "day_0_sparse_contig_freq.npy").exists()
    with pytest.raises(ValueError, match=r"day_0_sparse.npy: expected sparse ids of shape \(N, 26\)"):
        BinaryCriteoUtils.sparse_to_contiguous(paths, str(tmp_path / "o2"), progress=False)


def test_merge_counts():
    v, n = merge_counts(np.array([5, 1, 5, 3, 1]), np.array([1, 2, 3, 4, 5]))
    assert v.tolist() == [1, 3, 5] and n.tolist() == [7, 4, 4]
