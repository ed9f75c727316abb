"""JaggedTensor: golden values and conversions against hand-computed results."""

import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, jt_is_equal


def test_golden_to_padded_dense_truncates():
    jt = JaggedTensor(values=torch.tensor([1, 2, 3, 4]), lengths=torch.tensor([1, 3]))
    assert jt.to_padded_dense(desired_length=2).tolist() == [[1, 0], [2, 3]]


def test_to_padded_dense_default_and_padding_value():
    jt = JaggedTensor(values=torch.tensor([1.0, 2.0, 3.0, 4.0]), lengths=torch.tensor([1, 0, 3]))
    assert jt.to_padded_dense().tolist() == [[1, 0, 0], [0, 0, 0], [2, 3, 4]]
    assert jt.to_padded_dense(4, padding_value=-1.0).tolist() == [[1, -1, -1, -1], [-1] * 4, [2, 3, 4, -1]]


def test_to_padded_dense_2d_values():
    v = torch.arange(8.0).view(4, 2)
    jt = JaggedTensor(values=v, lengths=torch.tensor([1, 3]))
    out = jt.to_padded_dense(2)
    assert out.shape == (2, 2, 2)
    assert out[0].tolist() == [[0, 1], [0, 0]] and out[1].tolist() == [[2, 3], [4, 5]]


def test_padded_weights():
    jt = JaggedTensor(values=torch.tensor([1, 2, 3]), weights=torch.tensor([0.5, 1.5, 2.5]), lengths=torch.tensor([2, 1]))
    assert jt.to_padded_dense_weights(3).tolist() == [[0.5, 1.5, 0.0], [2.5, 0.0, 0.0]]
    assert JaggedTensor(values=torch.tensor([1]), lengths=torch.tensor([1])).to_padded_dense_weights() is None


def test_golden_from_dense():
    jt = JaggedTensor.from_dense([torch.tensor([1, 2]), torch.tensor([3])])
    assert jt.lengths().tolist() == [2, 1] and jt.values().tolist() == [1, 2, 3]
    assert jt.offsets().tolist() == [0, 2, 3]


def test_from_dense_lengths():
    dense = torch.tensor([[1, 2, 3], [4, 5, 6]])
    jt = JaggedTensor.from_dense_lengths(dense, torch.tensor([2, 1]))
    assert jt.values().tolist() == [1, 2, 4] and jt.lengths().tolist() == [2, 1]


def test_offsets_only_and_lengths_only():
    a = JaggedTensor(values=torch.tensor([1, 2, 3]), offsets=torch.tensor([0, 2, 2, 3]))
    assert a.lengths().tolist() == [2, 0, 1] and a.lengths_or_none() is not None
    b = JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 0, 1]))
    assert b.offsets_or_none() is None and b.offsets().tolist() == [0, 2, 2, 3]
    assert jt_is_equal(a, b)
    assert [t.tolist() for t in a.to_dense()] == [[1, 2], [], [3]]


def test_empty_and_empty_like():
    e = JaggedTensor.empty(is_weighted=True, values_dtype=torch.float)
    assert e.values().numel() == 0 and e.weights().numel() == 0 and e.lengths().dtype == torch.int32
    assert e.offsets().tolist() == [0]
    el = JaggedTensor.empty_like(JaggedTensor(values=torch.tensor([1.5]), lengths=torch.tensor([1])))
    assert el.values().dtype == torch.float and el.weights_or_none() is None


def test_jt_is_equal_detects_differences():
    a = JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 1]))
    assert not jt_is_equal(a, JaggedTensor(values=torch.tensor([1, 2, 4]), lengths=torch.tensor([2, 1])))
    assert not jt_is_equal(a, JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([1, 2])))
    assert not jt_is_equal(a, JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 1]), weights=torch.ones(3)))


def test_to_and_size_in_bytes():
    jt = JaggedTensor(values=torch.tensor([1, 2, 3]), lengths=torch.tensor([2, 1], dtype=torch.int32))
    assert jt.size_in_bytes() == 3 * 8 + 2 * 4
    moved = jt.to(torch.device("cpu"))
    assert jt_is_equal(jt, moved)
