"""TensorPool / KeyedJaggedTensorPool: update-lookup round trips against a plain dict reference."""

import random

import pytest
import torch

from recsys_lib.modules.keyed_jagged_tensor_pool import KeyedJaggedTensorPool
from recsys_lib.modules.tensor_pool import TensorPool
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")


def test_tensor_pool_matches_dict_reference():
    rng = random.Random(0)
    pool = TensorPool(pool_size=12, dim=3, dtype=torch.float, device=CPU)
    ref = {}
    for _ in range(6):
        ids = [rng.randrange(12) for _ in range(rng.randint(1, 8))]  # repeats: the last write wins
        rows = torch.randn(len(ids), 3)
        pool.update(torch.tensor(ids), rows)
        for i, r in zip(ids, rows):
            ref[i] = r
        query = torch.tensor([rng.randrange(12) for _ in range(10)])
        expect = torch.stack([ref.get(int(i), torch.zeros(3)) for i in query])  # never written: zeros
        torch.testing.assert_close(pool.lookup(query), expect)
    assert list(pool.state_dict()) == ["_pool"]


def test_tensor_pool_bad_input():
    pool = TensorPool(pool_size=4, dim=2, dtype=torch.float, device=CPU)
    with pytest.raises(ValueError, match="pool_size=4"):
        pool.lookup(torch.tensor([-1]))  # TorchRec returns the last row here
    with pytest.raises(ValueError, match="pool_size=4"):
        pool.update(torch.tensor([4]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(1, 2\)"):
        pool.update(torch.tensor([1]), torch.zeros(1, 3))
    with pytest.raises(TypeError, match="dtype"):
        pool.update(torch.tensor([1]), torch.zeros(1, 2, dtype=torch.float64))


def _kjt(samples, keys, weighted):
    """``samples``: per sample ``{feature: [ids]}`` -> KJT (feature-major), optional weights = ids / 10."""
    values, lengths = [], []
    for k in keys:
        for s in samples:
            values += s[k]
            lengths.append(len(s[k]))
    w = torch.tensor(values, dtype=torch.float) / 10 if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(keys=keys, values=torch.tensor(values, dtype=torch.int64),
                                               lengths=torch.tensor(lengths), weights=w)


@pytest.mark.parametrize("weighted", [False, True])
def test_kjt_pool_matches_dict_reference(weighted):
    rng = random.Random(1)
    max_len = {"a": 2, "b": 3}
    pool = KeyedJaggedTensorPool(pool_size=9, feature_max_lengths=max_len, is_weighted=weighted, device=CPU)
    ref = {}
    for _ in range(5):
        n = rng.randint(1, 5)
        ids = [rng.randrange(9) for _ in range(n)]
        samples = [{k: [rng.randrange(100) for _ in range(rng.randint(0, m))] for k, m in max_len.items()}
                   for _ in range(n)]
        # input keys in another order, plus a feature the pool does not keep
        kjt = _kjt([dict(s, c=[7]) for s in samples], ["c", "b", "a"], weighted)
        pool.update(torch.tensor(ids), kjt)
        for i, s in zip(ids, samples):
            ref[i] = s
        query = [rng.randrange(9) for _ in range(6)]
        out = pool.lookup(torch.tensor(query))
        assert out.keys() == ["a", "b"] and out.stride() == len(query)
        expect = _kjt([ref.get(q, {"a": [], "b": []}) for q in query], ["a", "b"], weighted)
        assert torch.equal(out.lengths(), expect.lengths().to(out.lengths().dtype))
        assert torch.equal(out.values(), expect.values())
        if weighted:
            torch.testing.assert_close(out.weights(), expect.weights())
    keys = sorted(pool.state_dict())
    assert keys == (["key_lengths", "values", "weights"] if weighted else ["key_lengths", "values"])


def test_kjt_pool_state_dict_round_trip_and_bad_input():
    a = KeyedJaggedTensorPool(pool_size=4, feature_max_lengths={"a": 2}, device=CPU)
    a.update(torch.tensor([2]), _kjt([{"a": [5, 6]}], ["a"], False))
    b = KeyedJaggedTensorPool(pool_size=4, feature_max_lengths={"a": 2}, device=CPU)
    b.load_state_dict(a.state_dict())
    assert b.lookup(torch.tensor([2, 0])).values().tolist() == [5, 6]
    with pytest.raises(ValueError, match="feature_max_lengths"):
        a.update(torch.tensor([1]), _kjt([{"a": [1, 2, 3]}], ["a"], False))
    with pytest.raises(ValueError, match="pool_size=4"):
        a.lookup(torch.tensor([-2]))
    with pytest.raises(ValueError, match="CUDA"):
        KeyedJaggedTensorPool(pool_size=4, feature_max_lengths={"a": 2}, device=CPU, enable_uvm=True)
