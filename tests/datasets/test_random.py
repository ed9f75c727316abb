import pytest
import torch

from recsys_lib.datasets.random import RandomRecDataset


def _ds(**kw):
    args = dict(keys=["a", "b", "c"], batch_size=5, hash_sizes=[3, 50, 1000], ids_per_features=[1, 4, 2],
                num_dense=7, manual_seed=1, num_batches=4)
    args.update(kw)
    return RandomRecDataset(**args)


def test_shapes_ranges_and_kjt_layout():
    batches = list(_ds(min_ids_per_features=[1, 0, 2]))
    assert len(batches) == 4
    for b in batches:
        assert b.dense_features.shape == (5, 7) and b.dense_features.dtype == torch.float32
        assert b.labels.shape == (5,) and set(b.labels.tolist()) <= {0, 1}
        kjt = b.sparse_features
        assert kjt.keys() == ["a", "b", "c"] and kjt.stride() == 5
        lengths = kjt.lengths().view(3, 5)
        assert (lengths[0] == 1).all() and (lengths[2] == 2).all()
        assert ((lengths[1] >= 0) & (lengths[1] <= 4)).all()
        for key, h in zip(["a", "b", "c"], [3, 50, 1000]):
            v = kjt[key].values()
            assert ((v >= 0) & (v < h)).all()
        assert kjt.values().numel() == int(kjt.lengths().sum())


def test_default_lengths_fixed_for_one_count_random_for_per_key_counts():
    b = next(iter(RandomRecDataset(["x", "y"], 4, hash_size=10, ids_per_feature=3, num_dense=2, manual_seed=0)))
    assert b.sparse_features.lengths().tolist() == [3] * 8
    b = next(iter(RandomRecDataset(["x", "y"], 200, hash_size=10, ids_per_features=[2, 5], num_dense=2, manual_seed=0)))
    lengths = b.sparse_features.lengths().view(2, 200)
    assert [(int(l.min()), int(l.max())) for l in lengths] == [(0, 2), (0, 5)]


def test_generation_order_gives_known_draws():
    # per batch: lengths then ids for each key, then dense (normal), then labels, all from one seeded generator
    b = next(iter(RandomRecDataset(["x"], 3, hash_size=10, ids_per_feature=2, num_dense=2, manual_seed=5)))
    g = torch.Generator().manual_seed(5)
    torch.randint(2, 3, (3,), generator=g)
    torch.testing.assert_close(b.sparse_features.values(), torch.randint(0, 10, (6,), generator=g))
    torch.testing.assert_close(b.dense_features, torch.randn((3, 2), generator=g))
    torch.testing.assert_close(b.labels, torch.randint(0, 2, (3,), generator=g))


def test_seeded_reproducible_and_cycles():
    a = list(_ds(num_generated_batches=2))
    b = list(_ds(num_generated_batches=2))
    for x, y in zip(a, b):
        torch.testing.assert_close(x.dense_features, y.dense_features)
        torch.testing.assert_close(x.sparse_features.values(), y.sparse_features.values())
    torch.testing.assert_close(a[0].dense_features, a[2].dense_features)
    assert not torch.equal(a[0].dense_features, a[1].dense_features)
    c = list(_ds(manual_seed=2))
    assert not torch.equal(a[0].dense_features, c[0].dense_features)


def test_len_and_infinite():
    assert len(_ds()) == 4
    inf = _ds(num_batches=None)
    with pytest.raises(TypeError):
        len(inf)
    it = iter(inf)
    assert len([next(it) for _ in range(25)]) == 25


def test_torchrec_defaults_and_forever():
    # TorchRec accepts neither/both of the scalar and list forms: the list wins, defaults 100 rows / 2 ids per key
    ds = RandomRecDataset(keys=["a", "b"], batch_size=3, manual_seed=0, num_batches=2)
    kjt = next(iter(ds)).sparse_features
    assert int(kjt.values().max()) < 100 and int(kjt.lengths().max()) <= 2
    both = RandomRecDataset(keys=["a"], batch_size=3, hash_size=1000, hash_sizes=[1], ids_per_feature=3,
                            manual_seed=0, num_batches=1)
    assert int(next(iter(both)).sparse_features.values().max()) == 0  # hash_sizes=[1] won
    forever = iter(RandomRecDataset(keys=["a"], batch_size=2, hash_size=10, num_generated_batches=-1, manual_seed=0))
    batches = [next(forever) for _ in range(30)]  # num_generated_batches=-1: fresh batches, no end
    assert not all(torch.equal(batches[0].dense_features, b.dense_features) for b in batches[1:])


@pytest.mark.parametrize("kw,match", [
    (dict(hash_sizes=[1, 2]), "hash_sizes has 2 entries"),
    (dict(min_ids_per_features=[2, 5, 0]), "min ids"),
    (dict(batch_size=0), "batch_size"),
])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        _ds(**kw)
