"""InMemoryBinaryCriteoIterDataPipe: every row exactly once across ranks, batches, hashing, stages, seeds."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, InMemoryBinaryCriteoIterDataPipe

SIZES = (11, 4, 18)


@pytest.fixture
def days(tmp_path):
    """Three day files; row r has dense[:, 0] == r so rows can be traced."""
    paths = {"dense": [], "sparse": [], "labels": []}
    start = 0
    rng = np.random.default_rng(0)
    for d, n in enumerate(SIZES):
        ids = np.arange(start, start + n)
        arrays = {
            "dense": np.concatenate([ids[:, None], rng.random((n, 12))], 1).astype(np.float32),
            "sparse": rng.integers(0, 2**32, (n, 26)).astype(np.int64),
            "labels": (ids % 2).astype(np.int32).reshape(-1, 1),
        }
        for k, a in arrays.items():
            p = str(tmp_path / f"day_{d}_{k}.npy")
            np.save(p, a)
            paths[k].append(p)
        start += n
    full = {k: np.concatenate([np.load(p) for p in v]) for k, v in paths.items()}
    return paths, full


def _dp(paths, stage="train", rank=0, world=1, batch_size=4, **kw):
    return InMemoryBinaryCriteoIterDataPipe(stage, paths["dense"], paths["sparse"], paths["labels"],
                                            batch_size=batch_size, rank=rank, world_size=world, **kw)


def _rows(batches):
    return [int(r) for b in batches for r in b.dense_features[:, 0].tolist()]


@pytest.mark.parametrize("world", [1, 2, 3, 5])
@pytest.mark.parametrize("mmap_mode", [False, True])
def test_every_row_exactly_once_across_ranks(days, world, mmap_mode):
    paths, full = days
    seen, counts = [], []
    for rank in range(world):
        dp = _dp(paths, rank=rank, world=world, batch_size=4, mmap_mode=mmap_mode)
        batches = list(dp)
        assert len(batches) == len(dp)
        assert all(len(b.labels) == 4 for b in batches[:-1]) and 0 < len(batches[-1].labels)
        seen.extend(_rows(batches))
        counts.append(len(batches))
    assert sorted(seen) == list(range(sum(SIZES)))
    assert len(set(counts)) == 1  # every rank runs the same number of steps


def test_batches_are_dealt_round_robin(days):
    # 33 rows, batch 4, 2 ranks (the layout TorchRec 1.8.0 produces on the same files)
    paths, _ = days
    got = [[b.dense_features[:, 0].long().tolist() for b in _dp(paths, rank=r, world=2, batch_size=4)] for r in range(2)]
    assert got[0] == [[0, 1, 2, 3], [8, 9, 10, 11], [16, 17, 18, 19], [24, 25, 26, 27, 28]]
    assert got[1] == [[4, 5, 6, 7], [12, 13, 14, 15], [20, 21, 22, 23], [29, 30, 31, 32]]


def test_batch_contents_match_the_files(days):
    paths, full = days
    hashes = [97 + i for i in range(26)]
    for mmap_mode in (False, True):
        b = list(_dp(paths, batch_size=13, hashes=hashes, mmap_mode=mmap_mode))[1]  # rows 13..25 span files 1 and 2
        rows = slice(13, 26)
        torch.testing.assert_close(b.dense_features, torch.from_numpy(full["dense"][rows]))
        torch.testing.assert_close(b.labels, torch.from_numpy(full["labels"][rows, 0]))
        kjt = b.sparse_features
        assert kjt.keys() == DEFAULT_CAT_NAMES and kjt.stride() == 13
        assert kjt.lengths().tolist() == [1] * 26 * 13
        expected = full["sparse"][rows] % np.array(hashes)
        for f, key in enumerate(DEFAULT_CAT_NAMES):
            assert kjt[key].values().tolist() == expected[:, f].tolist()


def test_val_and_test_are_halves_of_the_last_day(days):
    paths, _ = days
    first = SIZES[0] + SIZES[1]
    val = _rows(_dp(paths, "val", batch_size=100))
    test = _rows(_dp(paths, "test", batch_size=100))
    assert val == list(range(first, first + 9)) and test == list(range(first + 9, first + 18))
    halves = [_rows(_dp(paths, "val", rank=r, world=2, batch_size=3)) for r in range(2)]
    # 9 val rows: one round of 3 per rank, then the last 3 rows split 2 + 1
    assert halves == [[first + i for i in (0, 1, 2, 6, 7)], [first + i for i in (3, 4, 5, 8)]]


def test_drop_last_gives_equal_full_batches(days):
    paths, _ = days
    counts = []
    for rank in range(3):  # 33 rows → 11 per rank → 2 full batches of 5 (1 row dropped per rank)
        batches = list(_dp(paths, rank=rank, world=3, batch_size=5, drop_last=True))
        assert all(len(b.labels) == 5 for b in batches)
        counts.append(len(batches))
    assert counts == [2, 2, 2]
    counts = [len(_dp(paths, rank=r, world=2, batch_size=4, drop_last=True)) for r in range(2)]  # 17 and 16 rows
    assert counts == [4, 4]


def test_shuffle_training_set_partitions_and_is_seeded(days):
    paths, _ = days
    per_rank = [_rows(_dp(paths, rank=r, world=2, shuffle_training_set=True, shuffle_training_set_random_seed=7))
                for r in range(2)]
    assert sorted(per_rank[0] + per_rank[1]) == list(range(33))
    assert per_rank[0] + per_rank[1] != list(range(33))
    again = _rows(_dp(paths, rank=0, world=2, shuffle_training_set=True, shuffle_training_set_random_seed=7))
    other = _rows(_dp(paths, rank=0, world=2, shuffle_training_set=True, shuffle_training_set_random_seed=8))
    assert again == per_rank[0] and other != per_rank[0]
    rows = np.array(per_rank[0])
    b = next(iter(_dp(paths, rank=0, world=2, shuffle_training_set=True, shuffle_training_set_random_seed=7)))
    np.testing.assert_array_equal(b.labels.numpy(), rows[:4] % 2)  # labels travel with their rows


def test_shuffle_batches_permutes_within_batches(days):
    paths, full = days
    plain = list(_dp(paths, batch_size=8))
    shuffled = list(_dp(paths, batch_size=8, shuffle_batches=True))
    assert _rows(plain) != _rows(shuffled)
    for p, s in zip(plain, shuffled):
        assert sorted(_rows([p])) == sorted(_rows([s]))
        ids = s.dense_features[:, 0].long().numpy()
        np.testing.assert_array_equal(s.labels.numpy(), full["labels"][ids, 0])
        np.testing.assert_array_equal(s.sparse_features["cat_5"].values().numpy(), full["sparse"][ids, 5])


def test_works_with_dataloader_as_in_the_dlrm_example(days):
    paths, _ = days
    loader = DataLoader(_dp(paths, batch_size=10), batch_size=None, collate_fn=lambda x: x)
    assert _rows(list(loader)) == list(range(33))


def test_errors(days, tmp_path):
    paths, _ = days
    with pytest.raises(ValueError, match="stage must be one of"):
        _dp(paths, stage="eval")
    with pytest.raises(ValueError, match="hashes must be 26"):
        _dp(paths, hashes=[5] * 3)
    bad = dict(paths, labels=paths["labels"][::-1])
    with pytest.raises(ValueError, match=r"day_2_labels.npy: expected labels shape \(11, 1\)"):
        _dp(bad)
    with open(paths["sparse"][1], "r+b") as f:
        f.truncate(200)
    with pytest.raises(ValueError, match="day_1_sparse.npy: truncated"):
        _dp(paths)


def test_batches_train_dlrm_as_in_the_example(days):
    # the loader's KJT layout must be what EmbeddingBagCollection expects (keys cat_*, one id per feature)
    from recsys_lib.models.dlrm import DLRM, DLRMTrain
    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
    from recsys_lib.modules.embedding_modules import EmbeddingBagCollection

    paths, full = days
    hashes = [11] * 26
    tables = [EmbeddingBagConfig(name=f"t_{n}", embedding_dim=4, num_embeddings=11, feature_names=[n])
              for n in DEFAULT_CAT_NAMES]
    torch.manual_seed(0)
    model = DLRMTrain(DLRM(EmbeddingBagCollection(tables=tables), dense_in_features=13,
                           dense_arch_layer_sizes=[8, 4], over_arch_layer_sizes=[8, 1]))
    batch = next(iter(_dp(paths, batch_size=6, hashes=hashes)))
    loss, (_, logits, labels) = model(batch)
    loss.backward()
    assert logits.shape == (6,) and torch.isfinite(loss)
    torch.testing.assert_close(labels, batch.labels)
    # the pooled embedding of sample 0, feature cat_3 is the table row of its hashed id
    ebc = model.model.sparse_arch.embedding_bag_collection
    pooled = ebc(batch.sparse_features)["cat_3"][0]
    row = int(full["sparse"][0, 3] % 11)
    torch.testing.assert_close(pooled, ebc.embedding_bags["t_cat_3"].weight[row])
