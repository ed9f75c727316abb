"""KeyedJaggedTensor: golden values (TorchRec 1.8.0, reference §2.2) and behaviour against hand-computed layouts."""

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, kjt_is_equal


def golden():
    # keys f1, f2; B = 3:  f1: [1,2] [] [3]   f2: [4] [5] [6,7]
    return KeyedJaggedTensor.from_lengths_sync(
        keys=["f1", "f2"], values=torch.arange(1, 8), lengths=torch.tensor([2, 0, 1, 1, 1, 2])
    )


def test_golden_accessors():
    kjt = golden()
    assert kjt.stride() == 3
    assert kjt.length_per_key() == [3, 4]
    assert kjt.offset_per_key() == [0, 3, 7]
    assert kjt.offsets().tolist() == [0, 2, 2, 3, 4, 5, 7]
    assert kjt.keys() == ["f1", "f2"]
    assert kjt.stride_per_key() == [3, 3]
    assert kjt.lengths_offset_per_key() == [0, 3, 6]
    assert kjt.index_per_key() == {"f1": 0, "f2": 1}
    assert kjt.variable_stride_per_key() is False
    assert kjt.weights_or_none() is None


def test_golden_getitem():
    jt = golden()["f2"]
    assert jt.values().tolist() == [4, 5, 6, 7]
    assert jt.lengths().tolist() == [1, 1, 2]
    assert jt.offsets().tolist() == [0, 1, 2, 4]


def test_golden_split():
    a, b = golden().split([1, 1])
    assert a.keys() == ["f1"] and a.values().tolist() == [1, 2, 3] and a.lengths().tolist() == [2, 0, 1]
    assert b.keys() == ["f2"] and b.values().tolist() == [4, 5, 6, 7] and b.lengths().tolist() == [1, 1, 2]
    assert b.offset_per_key() == [0, 4] and b.stride() == 3


def test_split_with_empty_segment():
    a, empty, b = golden().split([1, 0, 1])
    assert empty.keys() == [] and empty.values().numel() == 0 and empty.lengths().numel() == 0
    assert empty.to_dict() == {}  # a rank that receives no features still iterates its (empty) dict
    assert a.keys() == ["f1"] and b.keys() == ["f2"]


def test_golden_permute():
    p = golden().permute([1, 0])
    assert p.keys() == ["f2", "f1"]
    assert p.values().tolist() == [4, 5, 6, 7, 1, 2, 3]
    assert p.lengths().tolist() == [1, 1, 2, 2, 0, 1]
    assert p.length_per_key() == [4, 3] and p.offset_per_key() == [0, 4, 7]


def test_permute_repeat_and_drop():
    p = golden().permute([1, 1])
    assert p.keys() == ["f2", "f2"]
    assert p.values().tolist() == [4, 5, 6, 7, 4, 5, 6, 7]
    assert p.lengths().tolist() == [1, 1, 2, 1, 1, 2]


def test_golden_concat():
    kjt = golden()
    c = KeyedJaggedTensor.concat([kjt, kjt.permute([1, 0])])
    assert c.keys() == ["f1", "f2", "f2", "f1"]
    assert c.values().tolist() == [1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7, 1, 2, 3]
    assert c.length_per_key() == [3, 4, 4, 3] and c.stride() == 3


def test_golden_dist():
    kjt = golden()
    assert kjt.dist_labels() == ["lengths", "values"]
    assert kjt.dist_splits([1, 1]) == [[3, 3], [3, 4]]
    lengths, values = kjt.dist_tensors()
    assert lengths.tolist() == [2, 0, 1, 1, 1, 2] and values.tolist() == list(range(1, 8))


def test_to_dict_views_and_offsets():
    d = golden().to_dict()
    assert list(d) == ["f1", "f2"]
    assert d["f1"].values().tolist() == [1, 2, 3] and d["f1"].offsets().tolist() == [0, 2, 2, 3]
    assert d["f2"].lengths().tolist() == [1, 1, 2] and d["f2"].offsets().tolist() == [0, 1, 2, 4]


def test_weights_follow_values():
    w = torch.arange(7, dtype=torch.float) / 10
    kjt = KeyedJaggedTensor.from_lengths_sync(["f1", "f2"], torch.arange(1, 8), torch.tensor([2, 0, 1, 1, 1, 2]), weights=w)
    assert kjt.dist_labels() == ["lengths", "values", "weights"]
    assert kjt.dist_splits([1, 1]) == [[3, 3], [3, 4], [3, 4]]
    torch.testing.assert_close(kjt["f2"].weights(), w[3:])
    torch.testing.assert_close(kjt.permute([1, 0]).weights(), torch.cat([w[3:], w[:3]]))
    torch.testing.assert_close(kjt.split([1, 1])[0].weights(), w[:3])
    torch.testing.assert_close(kjt.to_dict()["f1"].weights(), w[:3])


def test_offsets_constructor_matches_lengths_constructor():
    a = golden()
    b = KeyedJaggedTensor.from_offsets_sync(["f1", "f2"], torch.arange(1, 8), torch.tensor([0, 2, 2, 3, 4, 5, 7]))
    assert kjt_is_equal(a, b)
    assert b.lengths().tolist() == [2, 0, 1, 1, 1, 2]


def test_from_jt_dict_round_trip():
    kjt = golden()
    back = KeyedJaggedTensor.from_jt_dict(kjt.to_dict())
    assert kjt_is_equal(kjt, back)


def test_empty_and_empty_like():
    e = KeyedJaggedTensor.empty(is_weighted=True, values_dtype=torch.int64, weights_dtype=torch.float)
    assert e.keys() == [] and e.values().numel() == 0 and e.weights().dtype == torch.float
    assert e.lengths().dtype == torch.int32 and e.stride() == 0
    el = KeyedJaggedTensor.empty_like(golden())
    assert el.keys() == [] and el.stride() == 3 and el.values().dtype == torch.int64


def test_sync_unsync_caches():
    kjt = KeyedJaggedTensor(keys=["f1", "f2"], values=torch.arange(1, 8), lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
    assert kjt.length_per_key_or_none() is None and kjt.offset_per_key_or_none() is None
    kjt.sync()
    assert kjt._length_per_key == [3, 4] and kjt._offset_per_key == [0, 3, 7]
    kjt.unsync()
    assert kjt.length_per_key_or_none() is None and kjt.offset_per_key_or_none() is None


def test_to_same_device_and_weights_dtype():
    w = torch.ones(7)
    kjt = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), weights=w, lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
    moved = kjt.to(torch.device("cpu"), dtype=torch.float64)
    assert moved.weights().dtype == torch.float64 and moved.values().dtype == torch.int64
    assert moved.keys() == kjt.keys() and torch.equal(moved.values(), kjt.values())


def test_getitem_returns_jagged_tensor_matching_reference():
    kjt = golden()
    for key, expected in {"f1": [[1, 2], [], [3]], "f2": [[4], [5], [6, 7]]}.items():
        jt = kjt[key]
        assert isinstance(jt, JaggedTensor)
        assert [t.tolist() for t in jt.to_dense()] == expected


def test_flatten_lengths_2d_lengths():
    kjt = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), lengths=torch.tensor([[2, 0, 1], [1, 1, 2]]), stride=3)
    flat = kjt.flatten_lengths()
    assert flat.lengths().shape == (6,) and flat.length_per_key() == [3, 4]


def test_pin_memory_matches_tensor_behaviour():
    kjt = golden()
    if torch.cuda.is_available():
        pinned = kjt.pin_memory()
        assert pinned.values().is_pinned() and pinned.lengths().is_pinned()
        assert kjt_is_equal(pinned, kjt)
    else:  # CPU-only build: the same error a plain tensor gives, not a silent copy
        with pytest.raises(RuntimeError) as plain:
            torch.ones(1).pin_memory()
        with pytest.raises(RuntimeError, match=str(plain.value)[:30]):
            kjt.pin_memory()


def test_record_stream_marks_every_tensor(monkeypatch):
    seen = []
    monkeypatch.setattr(torch.Tensor, "record_stream", lambda self, stream: seen.append((self.data_ptr(), stream)))
    w = torch.ones(7)
    kjt = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), weights=w, lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
    kjt.offsets()
    kjt.record_stream("s")
    ptrs = {kjt.values().data_ptr(), w.data_ptr(), kjt.lengths().data_ptr(), kjt.offsets().data_ptr()}
    assert {p for p, _ in seen} == ptrs and all(s == "s" for _, s in seen)
    seen.clear()
    kjt["f1"].record_stream("t")
    assert len(seen) == 3  # values, weights, lengths of the per-key view


def test_eager_fast_results_have_the_constructor_fields():
    # split/permute/concat build results without re-running the input checks; their fields must match __init__'s.
    kjt = golden()
    reference = set(vars(KeyedJaggedTensor(["a"], torch.tensor([1]), lengths=torch.tensor([1]))))
    for result in [*kjt.split([1, 1]), kjt.permute([1, 0]), KeyedJaggedTensor.concat([kjt, kjt]), kjt.flatten_lengths()]:
        assert set(vars(result)) == reference
        assert isinstance(result, KeyedJaggedTensor)
    assert set(vars(kjt["f1"])) == set(vars(JaggedTensor(torch.tensor([1]), lengths=torch.tensor([1]))))


def test_permute_and_split_keep_weight_gradients():
    w = torch.arange(1.0, 8.0, requires_grad=True)
    kjt = KeyedJaggedTensor(["f1", "f2"], torch.arange(1, 8), weights=w, lengths=torch.tensor([2, 0, 1, 1, 1, 2]))
    p = kjt.permute([1, 0, 1])
    (p.weights() * torch.arange(11.0)).sum().backward()
    # p.weights = [w3..w6 | w0..w2 | w3..w6] scaled by 0..10
    assert w.grad.tolist() == [4.0, 5.0, 6.0, 0.0 + 7.0, 1.0 + 8.0, 2.0 + 9.0, 3.0 + 10.0]


def test_copy_and_clear_storage():
    src = golden()
    dst = KeyedJaggedTensor(["f1", "f2"], torch.zeros(7, dtype=torch.int64), lengths=torch.zeros(6, dtype=torch.int64))
    values_buffer = dst.values()
    dst.copy_(src)
    assert dst.values() is values_buffer and kjt_is_equal(dst, src)
    with pytest.raises(ValueError, match="keys differ"):
        dst.copy_(src.permute([1, 0]))
    jt = JaggedTensor(torch.zeros(3), lengths=torch.zeros(2, dtype=torch.int64))
    jt.copy_(JaggedTensor(torch.ones(3), lengths=torch.tensor([1, 2])))
    assert jt.values().tolist() == [1.0, 1.0, 1.0] and jt.lengths().tolist() == [1, 2]
    with pytest.raises(ValueError, match="values shapes differ"):
        jt.copy_(JaggedTensor(torch.ones(4), lengths=torch.tensor([2, 2])))
    victim = golden()
    victim.clear_storage()
    assert victim.values().untyped_storage().nbytes() == 0
