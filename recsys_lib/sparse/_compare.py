"""Equality of jagged values (``jt_is_equal``, ``jt_dict_is_equal``, ``kjt_is_equal``; re-exported by
``jagged_tensor``, TorchRec's path): same keys and strides, equal tensors of equal shapes, weights present in both or
in neither. Lengths are compared (offsets derive from them), value dtypes may differ (the second is cast).
"""

from typing import Dict

from recsys_lib.sparse._utils import same, same_optional
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def jt_is_equal(jt_1: "JaggedTensor", jt_2: "JaggedTensor") -> bool:
    """True when both JTs hold the same values, lengths and weights (offsets derived)."""
    if not isinstance(jt_1, JaggedTensor) or not isinstance(jt_2, JaggedTensor):
        return False
    if not same_optional(jt_1.weights_or_none(), jt_2.weights_or_none()):
        return False
    return same(jt_1.values(), jt_2.values()) and same(jt_1.lengths(), jt_2.lengths())


def jt_dict_is_equal(d1: Dict[str, JaggedTensor], d2: Dict[str, JaggedTensor]) -> bool:
    if list(d1.keys()) != list(d2.keys()):
        return False
    for k in d1.keys():
        if not jt_is_equal(d1[k], d2[k]):
            return False
    return True


def kjt_is_equal(kjt_1: KeyedJaggedTensor, kjt_2: KeyedJaggedTensor) -> bool:
    """Same keys, strides, lengths, values and weights."""
    if not isinstance(kjt_1, KeyedJaggedTensor) or not isinstance(kjt_2, KeyedJaggedTensor):
        return False
    if kjt_1.keys() != kjt_2.keys() or kjt_1.stride_per_key() != kjt_2.stride_per_key():
        return False
    if kjt_1.variable_stride_per_key() != kjt_2.variable_stride_per_key():
        return False
    if not same_optional(kjt_1.weights_or_none(), kjt_2.weights_or_none()):
        return False
    return same(kjt_1.lengths().view(-1), kjt_2.lengths().view(-1)) and same(kjt_1.values(), kjt_2.values())
