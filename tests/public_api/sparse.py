from tests.public_api import REQUIRED

_JT = "recsys_lib.sparse.jagged_tensor"

NAMES = [
    ("recsys_lib", "JaggedTensor"),
    ("recsys_lib", "KeyedJaggedTensor"),
    ("recsys_lib", "KeyedTensor"),
    ("recsys_lib.sparse", "JaggedTensor"),
    ("recsys_lib.sparse", "KeyedJaggedTensor"),
    ("recsys_lib.sparse", "KeyedTensor"),
] + [
    (_JT, n)
    for n in [
        "JaggedTensor", "KeyedJaggedTensor", "KeyedTensor", "JaggedTensorMeta", "ComputeKJTToJTDict",
        "ComputeJTDictToKJT", "regroup_kts", "permute_multi_embedding", "jt_is_equal", "kjt_is_equal",
        "flatten_kjt_list", "unflatten_kjt_list",
    ]
]

SIGNATURES = [
    (_JT, "JaggedTensor", [("values", REQUIRED), ("weights", None), ("lengths", None), ("offsets", None)]),
    (_JT, "JaggedTensor.empty", [("is_weighted", False), ("device", None), ("values_dtype", None),
                                 ("weights_dtype", None), ("lengths_dtype", __import__("torch").int32)]),
    (_JT, "JaggedTensor.from_dense_lengths", [("values", REQUIRED), ("lengths", REQUIRED), ("weights", None)]),
    (_JT, "JaggedTensor.from_dense", [("values", REQUIRED), ("weights", None)]),
    (_JT, "JaggedTensor.to_padded_dense", [("self", REQUIRED), ("desired_length", None), ("padding_value", 0.0)]),
    (_JT, "JaggedTensor.to_padded_dense_weights", [("self", REQUIRED), ("desired_length", None), ("padding_value", 0.0)]),
    (_JT, "JaggedTensor.to", [("self", REQUIRED), ("device", REQUIRED), ("non_blocking", False)]),
    (_JT, "KeyedJaggedTensor", [
        ("keys", REQUIRED), ("values", REQUIRED), ("weights", None), ("lengths", None), ("offsets", None),
        ("stride", None), ("stride_per_key_per_rank", None), ("stride_per_key", None), ("length_per_key", None),
        ("lengths_offset_per_key", None), ("offset_per_key", None), ("index_per_key", None), ("jt_dict", None),
        ("inverse_indices", None),
    ]),
    (_JT, "KeyedJaggedTensor.from_offsets_sync", [
        ("keys", REQUIRED), ("values", REQUIRED), ("offsets", REQUIRED), ("weights", None), ("stride", None),
        ("stride_per_key_per_rank", None), ("inverse_indices", None),
    ]),
    (_JT, "KeyedJaggedTensor.from_lengths_sync", [
        ("keys", REQUIRED), ("values", REQUIRED), ("lengths", REQUIRED), ("weights", None), ("stride", None),
        ("stride_per_key_per_rank", None), ("inverse_indices", None),
    ]),
    (_JT, "KeyedJaggedTensor.concat", [("kjt_list", REQUIRED)]),
    (_JT, "KeyedJaggedTensor.empty", [("is_weighted", False), ("device", None), ("values_dtype", None),
                                      ("weights_dtype", None), ("lengths_dtype", __import__("torch").int32)]),
    (_JT, "KeyedJaggedTensor.empty_like", [("kjt", REQUIRED)]),
    (_JT, "KeyedJaggedTensor.from_jt_dict", [("jt_dict", REQUIRED)]),
    (_JT, "KeyedJaggedTensor.dist_init", [
        ("keys", REQUIRED), ("tensors", REQUIRED), ("variable_stride_per_key", REQUIRED), ("num_workers", REQUIRED),
        ("recat", REQUIRED), ("stride_per_rank", REQUIRED), ("stagger", 1),
    ]),
    (_JT, "KeyedJaggedTensor.split", [("self", REQUIRED), ("segments", REQUIRED)]),
    (_JT, "KeyedJaggedTensor.permute", [("self", REQUIRED), ("indices", REQUIRED), ("indices_tensor", None)]),
    (_JT, "KeyedJaggedTensor.to", [("self", REQUIRED), ("device", REQUIRED), ("non_blocking", False), ("dtype", None)]),
    (_JT, "KeyedJaggedTensor.to_dict", [("self", REQUIRED), ("compute_offsets", True)]),
    (_JT, "KeyedJaggedTensor.dist_splits", [("self", REQUIRED), ("key_splits", REQUIRED)]),
    (_JT, "KeyedJaggedTensor.__getitem__", [("self", REQUIRED), ("key", REQUIRED)]),
    (_JT, "KeyedTensor", [("keys", REQUIRED), ("length_per_key", REQUIRED), ("values", REQUIRED), ("key_dim", 1),
                          ("offset_per_key", None), ("index_per_key", None)]),
    (_JT, "KeyedTensor.from_tensor_list", [("keys", REQUIRED), ("tensors", REQUIRED), ("key_dim", 1), ("cat_dim", 1)]),
    (_JT, "KeyedTensor.regroup", [("keyed_tensors", REQUIRED), ("groups", REQUIRED)]),
    (_JT, "KeyedTensor.regroup_as_dict", [("keyed_tensors", REQUIRED), ("groups", REQUIRED), ("keys", REQUIRED)]),
    (_JT, "KeyedTensor.to", [("self", REQUIRED), ("device", REQUIRED), ("non_blocking", False)]),
    (_JT, "regroup_kts", [("keyed_tensors", REQUIRED), ("groups", REQUIRED)]),
    (_JT, "permute_multi_embedding", [("keyed_tensors", REQUIRED), ("groups", REQUIRED)]),
    (_JT, "jt_is_equal", [("jt_1", REQUIRED), ("jt_2", REQUIRED)]),
    (_JT, "kjt_is_equal", [("kjt_1", REQUIRED), ("kjt_2", REQUIRED)]),
    ("recsys_lib.sparse.jagged_tensor_validator", "validate_keyed_jagged_tensor", [("kjt", REQUIRED), ("configs", None)]),
]

NAMES += [("recsys_lib.sparse.tensor_dict", "maybe_td_to_kjt")]
SIGNATURES += [
    (_JT, "KeyedJaggedTensor.empty_like", [("kjt", REQUIRED), ("device", None)]),
    (_JT, "JaggedTensor.copy_", [("self", REQUIRED), ("jt", REQUIRED), ("non_blocking", False)]),
    (_JT, "KeyedTensor.size_in_bytes", [("self", REQUIRED)]),
]
