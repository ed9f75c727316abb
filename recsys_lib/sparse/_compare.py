"""Equality of keyed jagged tensors (tests and validation)."""

import torch

from recsys_lib.sparse._jagged import jt_is_equal  # noqa: F401  (re-exported next to kjt_is_equal)
from recsys_lib.sparse._keyed_jagged import KeyedJaggedTensor


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and bool(torch.equal(a, b.to(a.dtype)))


def kjt_is_equal(kjt_1: KeyedJaggedTensor, kjt_2: KeyedJaggedTensor) -> bool:
    """Same keys, strides, lengths, values and weights."""
    if not isinstance(kjt_1, KeyedJaggedTensor) or not isinstance(kjt_2, KeyedJaggedTensor):
        return False
    if kjt_1.keys() != kjt_2.keys() or kjt_1.stride_per_key() != kjt_2.stride_per_key():
        return False
    if kjt_1.variable_stride_per_key() != kjt_2.variable_stride_per_key():
        return False
    w1, w2 = kjt_1.weights_or_none(), kjt_2.weights_or_none()
    if (w1 is None) != (w2 is None):
        return False
    if w1 is not None and w2 is not None and not _same(w1, w2):
        return False
    return _same(kjt_1.lengths().view(-1), kjt_2.lengths().view(-1)) and _same(kjt_1.values(), kjt_2.values())
