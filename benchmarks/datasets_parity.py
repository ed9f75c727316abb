"""Checks recsys_lib.datasets against TorchRec on the same synthetic files (needs TorchRec: the compare venv).

    .venv-compare/bin/python benchmarks/datasets_parity.py

0. TSV / CSV row readers: identical row dicts (``criteo_terabyte``, ``criteo_kaggle``, ``movielens_20m``).
1. ``tsv_to_npys``: byte-identical ``.npy`` files (1TB-style days with missing and negative values, Kaggle test).
2. ``sparse_to_contiguous``: byte-identical files for thresholds 0 and 3, with small and large chunks.
3. ``InMemoryBinaryCriteoIterDataPipe``: identical batches (dense, ids, lengths, labels, keys) on every rank for
   400 configurations (stage, world size 1-5, batch size, drop_last, mmap_mode, hashes).
4. ``RandomRecDataset``: identical batches for the same seed (24 configurations).
``shuffle`` is random in both libraries and is not compared (TorchRec 1.8.0's output also repeats some rows).
"""

import filecmp
import itertools
import os
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from torchrec.datasets import criteo as tr  # noqa: E402

from recsys_lib.datasets import criteo as rl  # noqa: E402
from tests.datasets.criteo_files import make_rows, write_tsv  # noqa: E402


def check_readers(d):
    from torchrec.datasets import movielens as tm

    from recsys_lib.datasets import movielens as rm

    write_tsv(os.path.join(d, "rows"), make_rows(200, seed=5, missing=0.3))
    write_tsv(os.path.join(d, "test_rows.txt"), make_rows(20, seed=6, with_label=False))
    same = [list(tr.criteo_terabyte([os.path.join(d, "rows")])) == list(rl.criteo_terabyte([os.path.join(d, "rows")])),
            list(tr.criteo_kaggle(os.path.join(d, "test_rows.txt"))) == list(rl.criteo_kaggle(os.path.join(d, "test_rows.txt")))]
    with open(os.path.join(d, "ratings.csv"), "w") as f:
        f.write("userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,,1112484676\n7,2,4.0,1094785740\n")
    with open(os.path.join(d, "movies.csv"), "w") as f:
        f.write('movieId,title,genres\n2,Jumanji (1995),Adventure|Children\n29,"City of Lost Children, The (1995)",Drama\n')
    for inc in (False, True):
        same.append(list(tm.movielens_20m(d, include_movies_data=inc)) == list(rm.movielens_20m(d, include_movies_data=inc)))
    print(f"row readers identical (criteo_terabyte, criteo_kaggle test, movielens, movielens+movies): {same}")
    return all(same)


def check_random():
    from torchrec.datasets import random as trr

    from recsys_lib.datasets import random as rr

    def dump(ds):
        return [(b.sparse_features.values().tolist(), b.sparse_features.lengths().tolist(), b.dense_features.tolist(),
                 b.labels.tolist(), b.sparse_features.keys()) for b in ds]

    n = diffs = 0
    for ids, mins, gen, hs in itertools.product(
        (dict(ids_per_feature=3), dict(ids_per_features=[2, 4, 0])),
        (dict(), dict(min_ids_per_feature=0), dict(min_ids_per_features=[0, 0, 0])),
        (1, 3), (dict(hash_size=50), dict(hash_sizes=[10, 1000, 7])),
    ):
        kw = dict(keys=["a", "b", "c"], batch_size=5, num_dense=4, manual_seed=11, num_batches=6,
                  num_generated_batches=gen, **ids, **mins, **hs)
        n += 1
        diffs += dump(trr.RandomRecDataset(**kw)) != dump(rr.RandomRecDataset(**kw))
    print(f"RandomRecDataset: {n} configurations, {diffs} differ")
    return diffs == 0


def _same(a, b):
    return filecmp.cmp(a, b, shallow=False)


def check_tsv(d):
    write_tsv(os.path.join(d, "day_0"), make_rows(3000, seed=11, missing=0.3, vocab=50))
    write_tsv(os.path.join(d, "test.txt"), make_rows(500, seed=12, with_label=False))
    ok = True
    for name, ds in (("day_0", "criteo_1tb"), ("test.txt", "criteo_kaggle")):
        outs = {lib: [os.path.join(d, f"{lib}_{name}_{p}.npy") for p in ("dense", "sparse", "labels")] for lib in ("tr", "rl")}
        tr.BinaryCriteoUtils.tsv_to_npys(os.path.join(d, name), *outs["tr"], dataset_name=ds)
        rl.tsv_to_npys_chunked(os.path.join(d, name), *outs["rl"], dataset_name=ds, progress=False)
        same = [_same(a, b) for a, b in zip(outs["tr"], outs["rl"])]
        print(f"tsv_to_npys {name:9s} identical (dense, sparse, labels): {same}")
        ok &= all(same)
    return ok


def check_contiguous(d):
    rng = np.random.default_rng(1)
    files = []
    for i, n in enumerate((300, 50, 200)):
        files.append(os.path.join(d, f"day_{i}_sparse.npy"))
        np.save(files[-1], (rng.zipf(1.5, (n, 4)) * 7919 % 100003).astype(np.int64))
    ok = True
    for thr, chunk in itertools.product((0, 3), (7, 1 << 18)):
        t_dir, r_dir = os.path.join(d, f"tr{thr}_{chunk}"), os.path.join(d, f"rl{thr}_{chunk}")
        os.makedirs(t_dir)
        tr.BinaryCriteoUtils.sparse_to_contiguous(files, t_dir, frequency_threshold=thr, columns=4)
        rl.sparse_to_contiguous_chunked(files, r_dir, frequency_threshold=thr, columns=4, chunk_rows=chunk,
                                                  progress=False)
        same = all(_same(os.path.join(t_dir, f), os.path.join(r_dir, f)) for f in os.listdir(t_dir))
        print(f"sparse_to_contiguous threshold={thr} chunk_rows={chunk}: identical {same}")
        ok &= same
    return ok


def _batches(cls, stage, paths, rank, world, bs, drop, **kw):
    dp = cls(stage, *paths, batch_size=bs, rank=rank, world_size=world, drop_last=drop, **kw)
    out = [(b.dense_features.tolist(), b.sparse_features.values().tolist(), b.sparse_features.lengths().tolist(),
            b.labels.tolist(), b.sparse_features.keys()) for b in dp]
    return out, len(dp)


def check_loader(d):
    rng = np.random.default_rng(0)
    paths = [[], [], []]
    start = 0
    for day, n in enumerate((11, 4, 18)):
        ids = np.arange(start, start + n)
        arrays = (np.concatenate([ids[:, None], rng.random((n, 12))], 1).astype(np.float32),
                  rng.integers(0, 2**32, (n, 26)).astype(np.int64), (ids % 2).astype(np.int32).reshape(-1, 1))
        for k, (part, a) in enumerate(zip(("dense", "sparse", "labels"), arrays)):
            paths[k].append(os.path.join(d, f"day_{day}_{part}.npy"))
            np.save(paths[k][-1], a)
        start += n
    stages = (("train", paths), ("val", [[p[-1]] for p in paths]), ("test", [[p[-1]] for p in paths]),
              ("train", [[p[1]] for p in paths]))
    n = diffs = 0
    for (stage, ps), world, bs, drop, mm in itertools.product(stages, (1, 2, 3, 4, 5), (1, 4, 5, 7, 40), (False, True), (False, True)):
        kw = dict(mmap_mode=mm, hashes=[97 + i for i in range(26)])
        t = [_batches(tr.InMemoryBinaryCriteoIterDataPipe, stage, ps, r, world, bs, drop, **kw) for r in range(world)]
        m = [_batches(rl.InMemoryBinaryCriteoIterDataPipe, stage, ps, r, world, bs, drop, **kw) for r in range(world)]
        n += 1
        diffs += t != m
    print(f"InMemoryBinaryCriteoIterDataPipe: {n} configurations, {diffs} differ")
    return diffs == 0


def main():
    with tempfile.TemporaryDirectory() as d:
        results = [check_readers(d), check_tsv(d), check_contiguous(d), check_loader(d), check_random()]
    print("PARITY OK" if all(results) else "PARITY FAILED")
    return all(results)


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
