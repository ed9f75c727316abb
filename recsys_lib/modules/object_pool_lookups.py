"""Storage behind the pools (``torchrec.modules.object_pool_lookups``).

A KJT pool stores each slot as one padded row: the slot's values of all features, feature after feature, then
zeros up to ``T = sum(feature_max_lengths)``, plus the per-feature lengths::

    values      (P, T)   slot 3: [a0 a1 | b0 b1 b2 | 0 0]      (features a, b; T = 7)
    key_lengths (P, F)   slot 3: [2, 3]
    weights     (P, T)   only when weighted

``lookup(ids)`` returns a ``JaggedTensor`` in slot-major order (``lengths (N*F,)``: slot 0's features, slot 1's,
...); the KJT pool turns it feature-major. FBGEMM's UVM-caching variants (``UVMCaching*Lookup``, defined in
``_uvm_pool_lookups.py``) need CUDA.
"""

import abc
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch

from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _exclusive_cumsum(x: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.cumsum(x, dim) - x


def gather_padded_rows(rows: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Concatenate ``rows[i, :lengths[i]]``: ``(N, T)`` and ``(N,)`` -> ``(sum(lengths),)``."""
    n, width = rows.shape
    keep = torch.arange(width, device=rows.device).unsqueeze(0) < lengths.unsqueeze(1).to(torch.int64)
    return rows[keep] if n > 0 else rows.new_empty((0,))


def pad_jagged_rows(values: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """Inverse of ``gather_padded_rows``: ``(sum(L),)`` values, ``(N,)`` lengths -> ``(N, width)`` zero-padded."""
    out = torch.zeros((lengths.numel(), width), dtype=values.dtype, device=values.device)
    keep = torch.arange(width, device=values.device).unsqueeze(0) < lengths.unsqueeze(1).to(torch.int64)
    out[keep] = values
    return out


class KeyedJaggedTensorPoolLookup(abc.ABC, torch.nn.Module):
    """Storage of a KJT pool.

    Args:
        pool_size: slots ``P``.
        feature_max_lengths: ``{feature: max ids per slot}``; ``T`` is their sum.
        is_weighted: also store weights.
        device: storage device.
    """

    _pool_size: int
    _feature_max_lengths: Dict[str, int]
    _is_weighted: bool
    _total_lengths: int
    _key_lengths: torch.Tensor

    def __init__(self, pool_size: int, feature_max_lengths: Dict[str, int], is_weighted: bool,
                 device: torch.device) -> None:
        super().__init__()
        self._pool_size = pool_size
        self._feature_max_lengths = feature_max_lengths
        self._device = device
        self._total_lengths = sum(feature_max_lengths.values())
        self._total_lengths_t = torch.tensor([self._total_lengths], device=device, dtype=torch.int32)
        self._is_weighted = is_weighted
        self._key_lengths = torch.zeros((pool_size, len(feature_max_lengths)), dtype=torch.int32, device=device)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, local_metadata: Dict[str, Any],
                              strict: bool, missing_keys: List[str], unexpected_keys: List[str],
                              error_msgs: List[str]) -> None:
        torch.nn.Module._load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                              unexpected_keys, error_msgs)

    @abc.abstractmethod
    def lookup(self, ids: torch.Tensor) -> JaggedTensor:
        """Slot-major ``JaggedTensor`` of the slots ``ids`` (``lengths (N*F,)``)."""

    @abc.abstractmethod
    def update(self, ids: torch.Tensor, values: JaggedTensor) -> None:
        """Write slot-major ``values`` (``lengths (N*F,)``) at distinct ``ids``."""

    def forward(self, ids: torch.Tensor) -> JaggedTensor:
        return self.lookup(ids)

    @abc.abstractmethod
    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, tensor)`` pairs the owning pool registers as its buffers."""


class TensorJaggedIndexSelectLookup(KeyedJaggedTensorPoolLookup):
    """Padded dense storage on the pool's device (``values (P, T)``, ``key_lengths (P, F)``, ``weights``).

    Args:
        pool_size: slots.
        values_dtype: dtype of the stored values.
        feature_max_lengths: ``{feature: max ids per slot}``.
        is_weighted: also store float weights.
        device: storage device.
    """

    _values: torch.Tensor
    _weights: torch.Tensor

    def __init__(self, pool_size: int, values_dtype: torch.dtype, feature_max_lengths: Dict[str, int],
                 is_weighted: bool, device: torch.device) -> None:
        super().__init__(pool_size=pool_size, feature_max_lengths=feature_max_lengths, is_weighted=is_weighted,
                         device=device)
        self._values_dtype = values_dtype
        self._values = torch.zeros((pool_size, self._total_lengths), dtype=values_dtype, device=device)
        shape = (pool_size, self._total_lengths) if is_weighted else (0,)
        self._weights = torch.zeros(shape, dtype=torch.float, device=device)

    def lookup(self, ids: torch.Tensor) -> JaggedTensor:
        key_lengths = self._key_lengths[ids]  # (N, F)
        totals = key_lengths.sum(1)
        values = gather_padded_rows(self._values[ids], totals)
        weights: Optional[torch.Tensor] = None
        if self._is_weighted:
            weights = gather_padded_rows(self._weights[ids], totals)
        return JaggedTensor(values=values, weights=weights, lengths=key_lengths.flatten())

    def update(self, ids: torch.Tensor, values: JaggedTensor) -> None:
        num_features = len(self._feature_max_lengths)
        key_lengths = values.lengths().view(-1, num_features)
        totals = key_lengths.sum(1)
        self._values[ids] = pad_jagged_rows(values.values(), totals, self._total_lengths).to(self._values.dtype)
        self._key_lengths[ids] = key_lengths.to(self._key_lengths.dtype)
        w = values.weights_or_none()
        if w is not None and self._is_weighted:
            self._weights[ids] = pad_jagged_rows(w, totals, self._total_lengths).to(self._weights.dtype)

    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        yield "values", self._values
        yield "key_lengths", self._key_lengths
        if self._is_weighted:
            yield "weights", self._weights


class TensorPoolLookup(abc.ABC, torch.nn.Module):
    """Storage of a tensor pool.

    Args:
        pool_size: rows.
        dim: row width.
        dtype: row dtype.
        device: storage device.
    """

    def __init__(self, pool_size: int, dim: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__()
        self._pool_size = pool_size
        self._dim = dim
        self._dtype = dtype
        self._device = device

    @abc.abstractmethod
    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        """Rows ``(N, D)`` of ``ids``."""

    @abc.abstractmethod
    def update(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """Write rows ``(N, D)`` at distinct ``ids``."""

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lookup(ids)

    @abc.abstractmethod
    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        """``(name, tensor)`` pairs the owning pool registers."""

    @abc.abstractmethod
    def set_state(self, loaded_values: torch.Tensor) -> None:
        """Replace the storage with ``loaded_values`` ``(P, D)``."""


class TensorLookup(TensorPoolLookup):
    """A plain ``(P, D)`` tensor (registered as ``_pool``).

    Args:
        pool_size: rows.
        dim: row width.
        dtype: row dtype.
        device: storage device.
        enable_uvm: accepted; storage is a plain device tensor.
    """

    def __init__(self, pool_size: int, dim: int, dtype: torch.dtype, device: torch.device,
                 enable_uvm: bool = False) -> None:
        super().__init__(pool_size=pool_size, dim=dim, dtype=dtype, device=device)
        self._enable_uvm = enable_uvm
        self._pool = torch.zeros((pool_size, dim), dtype=dtype, device=device)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        return self._pool.index_select(0, ids.to(torch.int64))

    def update(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        self._pool[ids] = values.to(self._pool.dtype)

    def set_state(self, loaded_values: torch.Tensor) -> None:
        self._pool.copy_(loaded_values)

    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        yield "_pool", self._pool

from recsys_lib.modules._uvm_pool_lookups import (  # noqa: E402,F401  (TorchRec defines them in this module)
    UVMCachingFloatLookup,
    UVMCachingInt32Lookup,
    UVMCachingInt64Lookup,
)
