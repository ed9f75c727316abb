"""Contiguous remapping: a per-feature bijection on kept ids, rare ids → 1, streamed over several files."""

import collections
import os

import numpy as np
import pytest

from recsys_lib.datasets._contiguous import merge_counts
from recsys_lib.datasets.criteo import sparse_to_contiguous_chunked


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
    """Plain-Python statement of the rule: kept ids numbered 2, 3, ... by first appearance, rare ids → 1."""
    full = np.concatenate(arrays)
    maps = []
    for c in range(full.shape[1]):
        col = full[:, c].tolist()
        counts = collections.Counter(col)
        m = {}
        for v in col:
            if v not in m:
                m[v] = (2 + sum(1 for x in m.values() if x != 1)) if counts[v] >= threshold else 1
        maps.append(m)
    return maps


@pytest.mark.parametrize("threshold,chunk_rows", [(3, 5), (1, 4), (0, 1000), (2, 1)])
def test_matches_reference_mapping(tmp_path, threshold, chunk_rows):
    arrays, paths = _files(tmp_path)
    out = tmp_path / "out"
    sparse_to_contiguous_chunked(paths, str(out), frequency_threshold=threshold, columns=4,
                                           chunk_rows=chunk_rows, progress=False)
    maps = _reference_maps(arrays, threshold)
    for i, a in enumerate(arrays):
        got = np.load(out / f"day_{i}_sparse_contig_freq.npy")
        expected = np.array([[maps[c][v] for c, v in enumerate(row)] for row in a.tolist()], dtype=np.int64)
        np.testing.assert_array_equal(got, expected)
    full_in, full_out = np.concatenate(arrays), np.concatenate([np.load(out / f"day_{i}_sparse_contig_freq.npy") for i in range(3)])
    for c in range(4):
        kept = full_out[:, c] != 1
        pairs = set(zip(full_in[kept, c].tolist(), full_out[kept, c].tolist()))
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)  # bijection
        assert sorted({b for _, b in pairs}) == list(range(2, 2 + len(pairs)))  # contiguous from 2
    if threshold > 1:
        assert (full_out == 1).any() and (full_out > 1).any()
    else:
        assert (full_out > 1).all()


def test_hand_computed_example(tmp_path):
    np.save(tmp_path / "a_sparse.npy", np.array([[50], [10], [50], [70]]))
    np.save(tmp_path / "b_sparse.npy", np.array([[10], [90]]))
    sparse_to_contiguous_chunked([str(tmp_path / "a_sparse.npy"), str(tmp_path / "b_sparse.npy")],
                                           str(tmp_path / "o"), frequency_threshold=2, columns=1, progress=False)
    assert np.load(tmp_path / "o" / "a_sparse_contig_freq.npy").ravel().tolist() == [2, 3, 2, 1]
    assert np.load(tmp_path / "o" / "b_sparse_contig_freq.npy").ravel().tolist() == [3, 1]


def test_skips_existing_outputs_and_rejects_bad_shapes(tmp_path):
    _, paths = _files(tmp_path)
    out = tmp_path / "out"
    sparse_to_contiguous_chunked(paths, str(out), columns=4, progress=False)
    target = out / "day_1_sparse_contig_freq.npy"
    before = os.stat(target).st_mtime_ns
    os.remove(out / "day_0_sparse_contig_freq.npy")
    sparse_to_contiguous_chunked(paths, str(out), columns=4, progress=False)
    assert os.stat(target).st_mtime_ns == before and (out / "day_0_sparse_contig_freq.npy").exists()
    with pytest.raises(ValueError, match=r"day_0_sparse.npy: expected sparse ids of shape \(N, 26\)"):
        sparse_to_contiguous_chunked(paths, str(tmp_path / "o2"), progress=False)


def test_merge_counts():
    v, n, f = merge_counts(np.array([5, 1, 5, 3, 1]), np.array([1, 2, 3, 4, 5]), np.array([9, 4, 2, 7, 8]))
    assert v.tolist() == [1, 3, 5] and n.tolist() == [7, 4, 4] and f.tolist() == [4, 7, 2]
