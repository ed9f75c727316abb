"""shuffle_training_set + drop_last: each rank keeps floor(its rows / batch) batches (TorchRec 1.8.0's counts)."""

import numpy as np

from recsys_lib.datasets.criteo import InMemoryBinaryCriteoIterDataPipe


def test_per_rank_batches_with_drop_last(tmp_path):
    rng = np.random.default_rng(0)
    paths = {"dense": [], "sparse": [], "labels": []}
    for day, rows in enumerate([10, 7]):  # 17 rows: rank 0 gets 9, rank 1 gets 8
        for kind, arr in (("dense", rng.random((rows, 13), dtype=np.float32)),
                          ("sparse", rng.integers(0, 5, (rows, 26)).astype(np.int32)),
                          ("labels", rng.integers(0, 2, (rows, 1)).astype(np.int32))):
            p = tmp_path / f"day_{day}_{kind}.npy"
            np.save(p, arr)
            paths[kind].append(str(p))
    got = []
    for rank in range(2):
        dp = InMemoryBinaryCriteoIterDataPipe("train", paths["dense"], paths["sparse"], paths["labels"], batch_size=3,
                                              rank=rank, world_size=2, drop_last=True, shuffle_training_set=True)
        got.append((len(dp), sum(b.labels.numel() for b in dp)))
    assert got == [(9 // 3, 9), (8 // 3, 6)]
