"""Small Criteo/MovieLens files in the real formats, plus a plain-numpy reference of the TSV → npy step."""

import io
import random

import numpy as np

N_INT, N_CAT = 13, 26


def make_rows(n, seed=0, missing=0.15, vocab=12, with_label=True):
    """``n`` Criteo rows as lists of strings; fields are empty with probability ``missing``."""
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(32):08x}" for _ in range(vocab)]
    rows = []
    for _ in range(n):
        row = [str(rng.randint(0, 1))] if with_label else []
        row += ["" if rng.random() < missing else str(rng.randint(-3, 500)) for _ in range(N_INT)]
        row += ["" if rng.random() < missing else rng.choice(ids) for _ in range(N_CAT)]
        rows.append(row)
    return rows


def write_tsv(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")


def reference_arrays(rows, with_label=True):
    """TorchRec's documented numerics, computed on whole arrays with plain numpy (Kaggle test: fake label -1,
    as TorchRec 1.8.0 writes it)."""
    lab = 1 if with_label else 0
    labels = np.array([int(r[0] or 0) if with_label else -1 for r in rows], dtype=np.int32).reshape(-1, 1)
    dense = np.array([[int(v or 0) for v in r[lab : lab + N_INT]] for r in rows], dtype=np.int32)
    dense -= dense.min() - 2
    dense = np.log(dense, dtype=np.float32)
    sparse = np.array([[int(v or "0", 16) for v in r[lab + N_INT :]] for r in rows], dtype=np.int64)
    return dense, sparse, labels


def npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def write_npys(tmp_path, name, dense, sparse, labels):
    paths = [str(tmp_path / f"{name}_{p}.npy") for p in ("dense", "sparse", "labels")]
    for p, a in zip(paths, (dense, sparse, labels)):
        np.save(p, a)
    return paths
