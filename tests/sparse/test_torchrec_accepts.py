"""Inputs TorchRec 1.8.0 accepts are accepted here too, with the results a plain-torch reading gives."""

import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


def test_values_longer_than_lengths_sum_are_ignored_after_the_last_bag():
    values = torch.arange(10)
    kjt = KeyedJaggedTensor.from_lengths_sync(["a", "b"], values, torch.tensor([1, 2, 0, 1]))
    assert kjt.length_per_key() == [3, 1]
    d = kjt.to_dict()
    torch.testing.assert_close(d["a"].values(), values[:3])
    torch.testing.assert_close(d["b"].values(), values[3:4])
    torch.testing.assert_close(kjt["b"].values(), values[3:4])


def test_offsets_not_starting_at_zero_index_values():
    values = torch.arange(6) * 10
    kjt = KeyedJaggedTensor(["a"], values, offsets=torch.tensor([2, 4, 6]))
    # offsets are indices: bag 0 = values[2:4], bag 1 = values[4:6]
    dense = kjt.to_dict()["a"].to_dense()
    assert [t.tolist() for t in dense] == [[20, 30], [40, 50]]
    jt = JaggedTensor(values, offsets=torch.tensor([2, 4, 6]))
    assert [t.tolist() for t in jt.to_dense()] == [[20, 30], [40, 50]]


def test_empty_and_empty_like():
    kjt = KeyedJaggedTensor.empty(is_weighted=True, values_dtype=torch.int64, weights_dtype=torch.float16)
    assert kjt.keys() == [] and kjt.values().numel() == 0 and kjt.weights().dtype == torch.float16
    src = KeyedJaggedTensor.from_lengths_sync(["a"], torch.arange(3), torch.tensor([1, 2]), weights=torch.ones(3))
    like = KeyedJaggedTensor.empty_like(src, device=torch.device("meta"))
    assert like.keys() == [] and like.device().type == "meta" and like.stride() == 2
    assert like.weights().dtype == src.weights().dtype


def test_key_indices_last_index_of_repeated_key():
    kjt = KeyedJaggedTensor(["a", "b", "a"], torch.arange(3), lengths=torch.tensor([1, 1, 1]))
    assert kjt._key_indices() == {"a": 2, "b": 1}


def test_vbe_strides_as_tensor():
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(4), lengths=torch.tensor([1, 2, 0, 1]),
                            stride_per_key_per_rank=torch.tensor([[1], [3]]))
    assert kjt.stride_per_key() == [1, 3]
    assert kjt.stride_per_key_per_rank() == [[1], [3]]
    torch.testing.assert_close(kjt["b"].values(), torch.tensor([1, 2, 3]))


def test_to_with_dtype_converts_weights():
    kjt = KeyedJaggedTensor(["a"], torch.arange(2), lengths=torch.tensor([2]), weights=torch.ones(2))
    moved = kjt.to(torch.device("cpu"), dtype=torch.float16)
    assert moved.weights().dtype == torch.float16 and moved.values().dtype == torch.int64


def test_str_layouts():
    kjt = KeyedJaggedTensor(["a", "b"], torch.arange(4), lengths=torch.tensor([1, 2, 0, 1]), weights=torch.ones(4))
    assert str(kjt) == (
        'KeyedJaggedTensor({\n    "a": {\n        "values": [[0], [1, 2]],\n        "weights": [[1.0], [1.0, 1.0]]\n'
        '    },\n    "b": {\n        "values": [[], [3]],\n        "weights": [[], [1.0]]\n    }\n})\n'
    )
    plain = KeyedJaggedTensor(["a", "b"], torch.arange(4), lengths=torch.tensor([1, 2, 0, 1]))
    assert str(plain) == 'KeyedJaggedTensor({\n    "a": [[0], [1, 2]],\n    "b": [[], [3]]\n})\n'
    assert str(KeyedJaggedTensor.empty()) == "KeyedJaggedTensor()\n"
    assert str(JaggedTensor(torch.arange(3), lengths=torch.tensor([1, 2]))) == "JaggedTensor({\n    [[0], [1, 2]]\n})\n"
    assert str(KeyedTensor(["a"], [2], torch.ones(1, 2))) == 'KeyedTensor({\n    "a": [[1.0, 1.0]]\n})\n'


def test_size_in_bytes_of_keyed_tensor():
    kt = KeyedTensor(["a"], [2], torch.ones(3, 2))
    assert kt.size_in_bytes() == 3 * 2 * 4


def test_ops_on_a_kjt_with_trailing_values_match_the_trimmed_kjt():
    values = torch.arange(12)
    lengths = torch.tensor([1, 2, 0, 1, 2, 1])
    long_kjt = KeyedJaggedTensor(["a", "b", "c"], values, lengths=lengths)
    ref = KeyedJaggedTensor(["a", "b", "c"], values[:7], lengths=lengths)
    for got, want in [(long_kjt.permute([2, 0]), ref.permute([2, 0])), (long_kjt.split([1, 2])[1], ref.split([1, 2])[1])]:
        assert got.keys() == want.keys()
        for k in want.keys():
            torch.testing.assert_close(got[k].values(), want[k].values())
            torch.testing.assert_close(got[k].lengths(), want[k].lengths())
