"""Variable batch per key (VBE), inverse indices, and dist_* (the all-to-all contract) simulated without a process group."""

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, kjt_is_equal


def vbe():
    # f1 batch 2: [1] [2,3]      f2 batch 3: [] [4] [5,6,7]
    return KeyedJaggedTensor(
        keys=["f1", "f2"],
        values=torch.arange(1, 8),
        lengths=torch.tensor([1, 2, 0, 1, 3]),
        stride_per_key_per_rank=[[2], [3]],
        inverse_indices=(["f1", "f2"], torch.tensor([[0, 1, 1], [0, 1, 2]])),
    )


def test_vbe_accessors():
    k = vbe()
    assert k.variable_stride_per_key() and k.stride_per_key() == [2, 3] and k.stride() == 3
    assert k.stride_per_key_per_rank() == [[2], [3]]
    assert k.length_per_key() == [3, 4] and k.offset_per_key() == [0, 3, 7]
    assert k.lengths_offset_per_key() == [0, 2, 5]
    assert k["f2"].lengths().tolist() == [0, 1, 3] and k["f2"].values().tolist() == [4, 5, 6, 7]
    d = k.to_dict()
    assert d["f1"].offsets().tolist() == [0, 1, 3] and d["f2"].offsets().tolist() == [0, 0, 1, 4]
    assert k.inverse_indices()[1].tolist() == [[0, 1, 1], [0, 1, 2]]


def test_vbe_permute_split_concat():
    k = vbe()
    p = k.permute([1, 0])
    assert p.values().tolist() == [4, 5, 6, 7, 1, 2, 3] and p.lengths().tolist() == [0, 1, 3, 1, 2]
    assert p.stride_per_key_per_rank() == [[3], [2]] and p.variable_stride_per_key()
    a, b = k.split([1, 1])
    assert a.stride_per_key() == [2] and b.lengths().tolist() == [0, 1, 3]
    c = KeyedJaggedTensor.concat([a, b])
    assert kjt_is_equal(c, k)


def test_concat_of_different_batches_becomes_vbe():
    a = KeyedJaggedTensor(["a"], torch.tensor([1, 2]), lengths=torch.tensor([1, 1]))
    b = KeyedJaggedTensor(["b"], torch.tensor([3]), lengths=torch.tensor([0, 0, 1]))
    c = KeyedJaggedTensor.concat([a, b])
    assert c.variable_stride_per_key() and c.stride_per_key() == [2, 3]
    assert c["b"].lengths().tolist() == [0, 0, 1]


def test_vbe_dist_labels_splits_tensors():
    k = vbe()
    assert k.dist_labels() == ["lengths", "values", "strides"]
    assert k.dist_splits([1, 1]) == [[2, 3], [3, 4], [1, 1]]
    lengths, values, strides = k.dist_tensors()
    assert strides.tolist() == [2, 3] and lengths.tolist() == [1, 2, 0, 1, 3]


def test_stride_per_key_per_rank_as_tensor():
    k = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), lengths=torch.tensor([1, 2, 0, 1, 3]),
                          stride_per_key_per_rank=torch.tensor([[2], [3]]))
    assert k.stride_per_key_per_rank() == [[2], [3]]


def _all_to_all(sources, key_splits):
    """What each destination receives: per label, the concatenation over source ranks (rank-major)."""
    world = len(sources)
    received = []
    for dest in range(world):
        parts = [src.split(key_splits)[dest] for src in sources]
        tensors = [p.dist_tensors() for p in parts]
        received.append([torch.cat([t[i] for t in tensors]) for i in range(len(tensors[0]))])
    return received


def _recat(num_local_keys, world):
    # output segment (key f, rank w) <- input segment (rank w, key f)
    return torch.tensor([w * num_local_keys + f for f in range(num_local_keys) for w in range(world)], dtype=torch.int32)


def _source(rank, batch, weighted):
    g = torch.Generator().manual_seed(rank)
    lengths = torch.randint(0, 3, (4 * batch,), generator=g)
    values = torch.arange(int(lengths.sum())) + 100 * rank
    w = values.float() / 10 if weighted else None
    return KeyedJaggedTensor(["a", "b", "c", "d"], values, weights=w, lengths=lengths)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("batches", [[2, 2], [2, 3]])
def test_dist_init_rebuilds_key_major_batch(weighted, batches):
    sources = [_source(r, b, weighted) for r, b in enumerate(batches)]
    key_splits = [2, 2]
    received = _all_to_all(sources, key_splits)
    for dest, local_keys in enumerate([["a", "b"], ["c", "d"]]):
        got = KeyedJaggedTensor.dist_init(
            keys=local_keys, tensors=received[dest], variable_stride_per_key=False, num_workers=2,
            recat=_recat(2, 2), stride_per_rank=batches,
        )
        # oracle: each key's batch is rank 0's samples followed by rank 1's
        want = {}
        for k in local_keys:
            jts = [s[k] for s in sources]
            want[k] = JaggedTensor(
                values=torch.cat([j.values() for j in jts]),
                lengths=torch.cat([j.lengths() for j in jts]),
                weights=torch.cat([j.weights() for j in jts]) if weighted else None,
            )
        assert kjt_is_equal(got, KeyedJaggedTensor.from_jt_dict(want))
        assert got.stride() == sum(batches)


def test_dist_init_vbe():
    sources = [
        KeyedJaggedTensor(["a", "b"], torch.tensor([1, 2, 3]), lengths=torch.tensor([1, 0, 2]), stride_per_key_per_rank=[[1], [2]]),
        KeyedJaggedTensor(["a", "b"], torch.tensor([4, 5]), lengths=torch.tensor([1, 1, 0, 0]), stride_per_key_per_rank=[[2], [2]]),
    ]
    # a single destination holding both keys receives every rank's lengths / values / strides
    received = [torch.cat([s.dist_tensors()[i] for s in sources]) for i in range(3)]
    got = KeyedJaggedTensor.dist_init(["a", "b"], received, True, 2, _recat(2, 2), None)
    assert got.variable_stride_per_key()
    assert got.stride_per_key_per_rank() == [[1, 2], [2, 2]]
    assert got["a"].lengths().tolist() == [1, 1, 1] and got["a"].values().tolist() == [1, 4, 5]
    assert got["b"].lengths().tolist() == [0, 2, 0, 0] and got["b"].values().tolist() == [2, 3]


def test_dist_init_single_worker_without_recat():
    k = _source(0, 3, weighted=True)
    got = KeyedJaggedTensor.dist_init(k.keys(), k.dist_tensors(), False, 1, None, [3])
    assert kjt_is_equal(got, k)
