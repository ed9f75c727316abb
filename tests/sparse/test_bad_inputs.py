"""Malformed input gives a clear ValueError/TypeError naming what is wrong (never a crash or a silent result)."""

import pytest
import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor
from recsys_lib.sparse.jagged_tensor_validator import validate_keyed_jagged_tensor

KEYS = ["f1", "f2"]
VALUES = torch.arange(1, 8)
LENGTHS = torch.tensor([2, 0, 1, 1, 1, 2])


def kjt():
    return KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS)


CASES = [
    # (id, callable, exception type, message fragment)
    # Too few values: TorchRec builds the KJT and crashes later in to_dict; we name the key at the first sync.
    ("lengths_sum_past_values", lambda: KeyedJaggedTensor.from_lengths_sync(KEYS, torch.arange(6), LENGTHS),
     ValueError, "key 'f2' needs values up to index 7 but there are only 6 values"),
    ("negative_length", lambda: KeyedJaggedTensor.from_lengths_sync(KEYS, VALUES, torch.tensor([3, -1, 1, 1, 1, 2])),
     ValueError, "lengths must be >= 0, got lengths\\[1\\]=-1 at key 'f1' \\(batch index 1\\)"),
    ("offsets_not_monotone", lambda: KeyedJaggedTensor.from_offsets_sync(KEYS, VALUES, torch.tensor([0, 3, 2, 3, 4, 5, 7])),
     ValueError, "offsets must be non-decreasing, but offsets\\[1\\]=3 > offsets\\[2\\]=2 \\(key 'f1' \\(batch index 1\\)\\)"),
    ("lengths_offsets_disagree", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS,
                                                           offsets=torch.tensor([0, 1, 2, 3, 4, 5, 7]))["f1"],
     ValueError, "disagree at key 'f1' \\(batch index 0\\): lengths\\[0\\]=2 but offsets\\[1\\]-offsets\\[0\\]=1"),
    ("validator_negative_length", lambda: validate_keyed_jagged_tensor(
        KeyedJaggedTensor(KEYS, VALUES, lengths=torch.tensor([3, -1, 1, 1, 1, 2]))),
     ValueError, "negative length -1 at index 1"),
    ("offsets_wrong_size", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS, offsets=torch.tensor([0, 7])),
     ValueError, "offsets must have len\\(lengths\\) \\+ 1"),
    ("weights_length", lambda: KeyedJaggedTensor(KEYS, VALUES, weights=torch.ones(6), lengths=LENGTHS),
     ValueError, "one entry per value"),
    ("keys_vs_lengths", lambda: KeyedJaggedTensor(["a", "b", "c", "d"], VALUES, lengths=LENGTHS),
     ValueError, "not divisible by the 4 keys"),
    ("stride_vs_lengths", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS, stride=4),
     ValueError, "expected stride \\* len\\(keys\\)"),
    ("vbe_rows_vs_keys", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS, stride_per_key_per_rank=[[6]]),
     ValueError, "stride_per_key_per_rank has 1 rows for 2 keys"),
    ("vbe_total", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS, stride_per_key_per_rank=[[2], [3]]),
     ValueError, "sums to 5 batch entries"),
    ("float_lengths", lambda: KeyedJaggedTensor(KEYS, VALUES, lengths=LENGTHS.float()),
     TypeError, "lengths must have an integer dtype"),
    ("values_not_tensor", lambda: KeyedJaggedTensor(KEYS, [1, 2, 3], lengths=LENGTHS),
     TypeError, "values must be a torch.Tensor"),
    ("keys_not_str", lambda: KeyedJaggedTensor(["f1", 2], VALUES, lengths=LENGTHS),
     TypeError, "keys must be str"),
    ("values_2d", lambda: KeyedJaggedTensor(KEYS, VALUES.view(7, 1), lengths=LENGTHS),
     ValueError, "values must be 1-D"),
    ("no_lengths_or_offsets", lambda: KeyedJaggedTensor(KEYS, VALUES),
     ValueError, "one of lengths or offsets"),
    ("unknown_key", lambda: kjt()["nope"], KeyError, "no key 'nope'.*f1"),
    ("unknown_key_is_value_error", lambda: kjt()["nope"], ValueError, "nope"),
    ("split_sum", lambda: kjt().split([1, 2]), ValueError, "sum to 3, but .* 2 keys"),
    ("split_negative", lambda: kjt().split([3, -1]), ValueError, "must be >= 0"),
    ("permute_out_of_range", lambda: kjt().permute([0, 2]), ValueError, "indices must lie in \\[0, 2\\)"),
    ("permute_negative", lambda: kjt().permute([-1, 0]), ValueError, "indices must lie"),
    ("dist_splits_bad", lambda: kjt().dist_splits([3]), ValueError, "sum to 3"),
    ("concat_mixed_weights", lambda: KeyedJaggedTensor.concat(
        [kjt(), KeyedJaggedTensor(KEYS, VALUES, weights=torch.ones(7), lengths=LENGTHS)]),
     ValueError, "every KeyedJaggedTensor has weights or none"),
    ("concat_empty", lambda: KeyedJaggedTensor.concat([]), ValueError, "at least one"),
    ("jt_no_lengths", lambda: JaggedTensor(torch.arange(3)), ValueError, "one of lengths or offsets"),
    ("jt_weights", lambda: JaggedTensor(torch.arange(3), weights=torch.ones(2), lengths=torch.tensor([3])),
     ValueError, "weights shape \\(2,\\)"),
    ("jt_offsets_dtype", lambda: JaggedTensor(torch.arange(3), offsets=torch.tensor([0.0, 3.0])),
     TypeError, "offsets must have an integer dtype"),
    ("jt_negative_desired_length", lambda: JaggedTensor(torch.arange(3), lengths=torch.tensor([3])).to_padded_dense(-1),
     ValueError, "desired_length must be >= 0"),
    ("kt_lengths_sum", lambda: KeyedTensor(["a", "b"], [1, 1], torch.ones(2, 3)),
     ValueError, "length_per_key sums to 2 .* 3 entries"),
    ("kt_duplicate_keys", lambda: KeyedTensor(["a", "a"], [1, 2], torch.ones(2, 3)), ValueError, "duplicate keys \\['a'\\]"),
    ("kt_keys_vs_lengths", lambda: KeyedTensor(["a"], [1, 2], torch.ones(2, 3)), ValueError, "1 keys but 2 entries"),
    ("kt_unknown_key", lambda: KeyedTensor(["a"], [3], torch.ones(2, 3))["b"], KeyError, "no key 'b'"),
    ("regroup_unknown_key", lambda: KeyedTensor.regroup([KeyedTensor(["a"], [3], torch.ones(2, 3))], [["a", "zz"]]),
     ValueError, "key 'zz' is in no input"),
    ("regroup_as_dict_counts", lambda: KeyedTensor.regroup_as_dict([KeyedTensor(["a"], [3], torch.ones(2, 3))], [["a"]], ["x", "y"]),
     ValueError, "2 keys for 1 groups"),
    ("from_tensor_list_counts", lambda: KeyedTensor.from_tensor_list(["a", "b"], [torch.ones(2, 1)]),
     ValueError, "2 keys but 1 tensors"),
    ("dist_init_tensor_count", lambda: KeyedJaggedTensor.dist_init(KEYS, [LENGTHS], False, 1, None, None),
     ValueError, "expected 2 tensors"),
]


@pytest.mark.parametrize("fn,exc,msg", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_clear_error(fn, exc, msg):
    with pytest.raises(exc, match=msg):
        fn()


def test_validator_accepts_good_and_rejects_bad():
    assert validate_keyed_jagged_tensor(kjt()) is True
    bad = [
        (KeyedJaggedTensor(["a", "a"], VALUES, lengths=LENGTHS), "duplicate keys \\['a'\\]"),
        (KeyedJaggedTensor(KEYS, torch.arange(6), lengths=LENGTHS), "lengths sum to 7 but there are 6 values"),
        (KeyedJaggedTensor(KEYS, VALUES, lengths=torch.tensor([3, -1, 1, 1, 1, 2])), "negative length -1 at index 1"),
        (KeyedJaggedTensor(KEYS, VALUES, offsets=torch.tensor([1, 2, 2, 3, 4, 5, 7])), "offsets must start at 0"),
        (KeyedJaggedTensor(KEYS, VALUES, offsets=torch.tensor([0, 3, 2, 3, 4, 5, 7])), "non-decreasing; offsets\\[1\\]=3"),
        (KeyedJaggedTensor(KEYS, VALUES, offsets=torch.tensor([0, 2, 2, 3, 4, 5, 6])), "last offset 6 != number of values 7"),
        (KeyedJaggedTensor(KEYS, VALUES.float(), lengths=LENGTHS), "values must be integer ids"),
    ]
    for k, msg in bad:
        with pytest.raises((ValueError, TypeError), match=msg):
            validate_keyed_jagged_tensor(k)


def test_validator_id_ranges_with_configs():
    class Cfg:
        def __init__(self, name, rows, features):
            self.name, self.num_embeddings, self.feature_names = name, rows, features

    assert validate_keyed_jagged_tensor(kjt(), [Cfg("t1", 4, ["f1"]), Cfg("t2", 8, ["f2"])]) is True
    assert validate_keyed_jagged_tensor(kjt(), [Cfg("t2", 7, ["f2"])]) is False  # id 7 in a 7-row table


def test_constructor_checks_do_not_read_data():
    # A KJT whose lengths do not add up is still constructible (no sync in __init__); sync() catches it.
    bad = KeyedJaggedTensor(KEYS, torch.arange(6), lengths=LENGTHS)
    with pytest.raises(ValueError, match="needs values up to index 7"):
        bad.sync()
