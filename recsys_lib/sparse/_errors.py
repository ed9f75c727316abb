"""Exceptions of the sparse types."""


class UnknownKeyError(KeyError, ValueError):
    """A key that the KeyedJaggedTensor / KeyedTensor does not hold (a ``KeyError`` and a ``ValueError``)."""
