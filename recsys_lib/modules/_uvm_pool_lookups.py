"""FBGEMM UVM-caching pool storage (TorchRec's ``UVMCaching{Int64,Int32,Float}Lookup``): CUDA only.

The pool lives in the weights of a ``SplitTableBatchedEmbeddingBagsCodegen`` placed in managed (UVM) memory with
an HBM cache; a lookup is the TBE's sequence (``PoolingMode.NONE``) forward over the slot ids. KJT pools store a
slot as one row of int32 bit patterns (``T`` values padded to a multiple of 4, as the TBE needs); int64 values take
two such halves per row (high words, then low words)::

    Int32:  [ f1 values | f2 values | pad ]                          width 4*ceil(T/4)
    Int64:  [ high 32 bits ... | pad ][ low 32 bits ... | pad ]      width 2 * 4*ceil(T/4)

Constructing one on another device raises ``ValueError`` naming CUDA (FBGEMM's managed memory and cache are
CUDA features).
"""

from typing import Dict, Iterator, Optional, Tuple

import torch

from recsys_lib._public import public_at
from recsys_lib.modules.object_pool_lookups import (
    gather_padded_rows,
    KeyedJaggedTensorPoolLookup,
    pad_jagged_rows,
    TensorPoolLookup,
)
from recsys_lib.sparse.jagged_tensor import JaggedTensor


def _uvm_tbe(owner: str, rows: int, dim: int, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    if device.type not in ("cuda", "meta"):
        raise ValueError(f"{owner}: UVM-caching pool storage needs CUDA (FBGEMM managed memory with an HBM cache); "
                         f"got device {device}. Use the default lookups on {device.type}")
    from fbgemm_gpu.split_embedding_configs import SparseType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation, PoolingMode
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    location = EmbeddingLocation.MANAGED_CACHING if device.type != "meta" else EmbeddingLocation.DEVICE
    sparse = SparseType.from_dtype(dtype)
    return SplitTableBatchedEmbeddingBagsCodegen(
        embedding_specs=[(rows, dim, location, ComputeDevice.CUDA)], pooling_mode=PoolingMode.NONE, device=device,
        weights_precision=sparse, output_dtype=sparse,
    )


def _state(tbe: torch.nn.Module, rows: int) -> torch.Tensor:
    return tbe.split_embedding_weights()[0].flatten().view(rows, -1)


def _rows(tbe: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    offsets = torch.tensor([0, ids.numel()], device=ids.device, dtype=ids.dtype)
    return tbe(indices=ids, offsets=offsets)


@public_at("recsys_lib.modules.object_pool_lookups")
class UVMCachingFloatLookup(TensorPoolLookup):
    """Tensor-pool storage ``(P, D)`` in a UVM-caching TBE (CUDA only; see the module docstring)."""

    def __init__(self, pool_size: int, dim: int, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(pool_size=pool_size, dim=dim, dtype=dtype, device=device)
        self._tbe = _uvm_tbe(type(self).__name__, pool_size, dim, torch.device(device), dtype)
        self._tbe_state: torch.Tensor = _state(self._tbe, pool_size)

    def lookup(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.device.type != self._device.type:
            raise ValueError(f"UVMCachingFloatLookup: ids on {ids.device}, pool on {self._device}")
        return _rows(self._tbe, ids)

    def update(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        self._tbe_state[ids] = values.to(self._tbe_state.dtype)

    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        yield "_pool", self._tbe_state

    def set_state(self, loaded_values: torch.Tensor) -> None:
        self._tbe_state.copy_(loaded_values)


class _UVMKJTLookup(KeyedJaggedTensorPoolLookup):
    """Shared part of the int32 / int64 KJT storages: ``halves`` int32 words per value."""

    _halves: int = 1

    def __init__(self, pool_size: int, feature_max_lengths: Dict[str, int], is_weighted: bool,
                 device: torch.device) -> None:
        super().__init__(pool_size=pool_size, feature_max_lengths=feature_max_lengths, is_weighted=is_weighted,
                         device=device)
        self._bit_dims: int = ((self._total_lengths + 3) // 4) * 4  # the TBE wants dims divisible by 4
        name = type(self).__name__
        self._tbe = _uvm_tbe(name, pool_size, self._halves * self._bit_dims, torch.device(device))
        self._tbe_state: torch.Tensor = _state(self._tbe, pool_size)
        self._tbe_weights: Optional[torch.nn.Module] = None
        self._tbe_weights_state: Optional[torch.Tensor] = None
        if is_weighted:
            self._tbe_weights = _uvm_tbe(name, pool_size, self._bit_dims, torch.device(device))
            self._tbe_weights_state = _state(self._tbe_weights, pool_size)

    def _words(self, values: torch.Tensor) -> torch.Tensor:
        """``(N,)`` values -> ``(N, halves)`` int32 words."""
        return values.to(torch.int32).view(-1, 1)

    def _values(self, words: torch.Tensor) -> torch.Tensor:
        """``(N, halves)`` int32 words -> ``(N,)`` values."""
        return words.view(-1)

    def lookup(self, ids: torch.Tensor) -> JaggedTensor:
        key_lengths = self._key_lengths[ids]
        totals = key_lengths.sum(1)
        rows = _rows(self._tbe, ids).contiguous().view(torch.int32).view(ids.numel(), self._halves, self._bit_dims)
        words = [gather_padded_rows(rows[:, h], totals) for h in range(self._halves)]
        values = self._values(torch.stack(words, dim=1))
        weights: Optional[torch.Tensor] = None
        if self._tbe_weights is not None:
            weights = gather_padded_rows(_rows(self._tbe_weights, ids), totals)
        return JaggedTensor(values=values, weights=weights, lengths=key_lengths.flatten())

    def update(self, ids: torch.Tensor, values: JaggedTensor) -> None:
        key_lengths = values.lengths().view(-1, len(self._feature_max_lengths))
        totals = key_lengths.sum(1)
        words = self._words(values.values())
        halves = [pad_jagged_rows(words[:, h].contiguous(), totals, self._bit_dims) for h in range(self._halves)]
        self._tbe_state[ids] = torch.cat(halves, dim=1).view(torch.float32)
        self._key_lengths[ids] = key_lengths.to(self._key_lengths.dtype)
        w = values.weights_or_none()
        if self._tbe_weights_state is not None and w is not None:
            self._tbe_weights_state[ids] = pad_jagged_rows(w.to(torch.float32), totals, self._bit_dims)

    def states_to_register(self) -> Iterator[Tuple[str, torch.Tensor]]:
        yield "values", self._tbe_state
        yield "key_lengths", self._key_lengths
        if self._tbe_weights_state is not None:
            yield "weights", self._tbe_weights_state


@public_at("recsys_lib.modules.object_pool_lookups")
class UVMCachingInt32Lookup(_UVMKJTLookup):
    """KJT-pool storage of int32 values in a UVM-caching TBE (CUDA only; see the module docstring).

    Args:
        pool_size: slots.
        feature_max_lengths: ``{feature: max ids per slot}``.
        is_weighted: also store weights (a second TBE).
        device: a CUDA device.
    """

    _halves = 1


@public_at("recsys_lib.modules.object_pool_lookups")
class UVMCachingInt64Lookup(_UVMKJTLookup):
    """KJT-pool storage of int64 values (two int32 words each) in a UVM-caching TBE (CUDA only; arguments as
    ``UVMCachingInt32Lookup``)."""

    _halves = 2

    def _words(self, values: torch.Tensor) -> torch.Tensor:
        v = values.to(torch.int64)
        high = (v >> 32).to(torch.int32)
        low = (v & 0xFFFFFFFF).to(torch.int32)  # the low word's bit pattern (wraps past 2**31)
        return torch.stack([high, low], dim=1)

    def _values(self, words: torch.Tensor) -> torch.Tensor:
        high = words[:, 0].to(torch.int64) << 32
        low = words[:, 1].to(torch.int64) & 0xFFFFFFFF
        return high | low
