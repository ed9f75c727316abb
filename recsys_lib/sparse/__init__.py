"""Sparse data types: ``JaggedTensor``, ``KeyedJaggedTensor``, ``KeyedTensor`` (see ``jagged_tensor``)."""

from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor  # noqa: F401
