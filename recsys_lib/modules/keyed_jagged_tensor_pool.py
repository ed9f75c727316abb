"""``KeyedJaggedTensorPool``: per-id jagged features, stored and read back as KJTs.

``update(ids, kjt)`` stores sample ``b`` of every pool feature under ``ids[b]`` (``kjt.stride() == len(ids)``;
on repeated ids the last sample wins); ``lookup(ids)`` returns a KJT of stride ``len(ids)`` in the pool's feature
order. Slots never written read as empty bags (as in TorchRec).
"""

from typing import Any, Dict, List, Optional

import torch

from recsys_lib.modules.object_pool import check_pool_ids, ObjectPool
from recsys_lib.modules.object_pool_lookups import KeyedJaggedTensorPoolLookup, TensorJaggedIndexSelectLookup
from recsys_lib.modules.utils import deterministic_dedup
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor


def _slot_to_feature_major(lengths_sf: torch.Tensor, values: torch.Tensor, n: int, f: int) -> torch.Tensor:
    # values laid out slot-major ((N, F) segments) -> feature-major ((F, N) segments)
    seg_start = _starts(lengths_sf.flatten()).view(n, f).t().flatten()
    seg_len = lengths_sf.t().flatten()
    return _gather_segments(values, seg_start, seg_len)


def _starts(lengths: torch.Tensor) -> torch.Tensor:
    return torch.cumsum(lengths, 0) - lengths


def _gather_segments(values: torch.Tensor, starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    total = int(lengths.sum())
    out_starts = _starts(lengths)
    index = torch.arange(total, device=values.device) + torch.repeat_interleave(starts - out_starts, lengths,
                                                                                output_size=total)
    return values.index_select(0, index)


def pool_feature_order(owner: str, values: KeyedJaggedTensor, keys: List[str]) -> List[int]:
    """Indices of the pool's ``keys`` in ``values.keys()``; ``ValueError`` naming the missing ones."""
    missing = [k for k in keys if k not in values.keys()]
    if missing:
        raise ValueError(f"{owner}: input KJT lacks feature(s) {missing}")
    return [values.keys().index(k) for k in keys]


def check_bag_lengths(owner: str, kjt: KeyedJaggedTensor, feature_max_lengths: Dict[str, int]) -> KeyedJaggedTensor:
    """``kjt`` (pool feature order) if every bag fits its feature's max length, else ``ValueError``."""
    keys = list(feature_max_lengths)
    if kjt.lengths().numel() == 0:
        return kjt
    longest = kjt.lengths().reshape(len(keys), -1).max(dim=1).values
    caps = torch.tensor(list(feature_max_lengths.values()), dtype=longest.dtype, device=longest.device)
    if bool((longest > caps).any()):
        over = {k: int(m) for k, m, cap in zip(keys, longest, feature_max_lengths.values()) if m > cap}
        raise ValueError(f"{owner}: bags longer than feature_max_lengths: {over} (max {feature_max_lengths})")
    return kjt


class KeyedJaggedTensorPool(ObjectPool[KeyedJaggedTensor]):
    """Per-id jagged features.

    Args:
        pool_size: slots ``P``.
        feature_max_lengths: ``{feature: max ids per slot}``; also the pool's feature order.
        values_dtype: dtype of the stored ids / values.
        is_weighted: also store weights.
        device: storage device (default ``meta``, as in TorchRec).
        enable_uvm: FBGEMM UVM caching (CUDA only; not provided: raises).

    Example::

        pool = KeyedJaggedTensorPool(pool_size=10, feature_max_lengths={"a": 2, "b": 3},
                                     device=torch.device("cpu"))
        pool.update(ids=torch.tensor([4, 0]), values=kjt)   # kjt: keys include a, b; stride 2
        pool.lookup(torch.tensor([0]))                     # KJT of sample 1 of kjt
    """

    def __init__(
        self,
        pool_size: int,
        feature_max_lengths: Dict[str, int],
        values_dtype: torch.dtype = torch.int64,
        is_weighted: bool = False,
        device: Optional[torch.device] = None,
        enable_uvm: bool = False,
    ) -> None:
        super().__init__()
        self._pool_size = pool_size
        self._feature_max_lengths: Dict[str, int] = feature_max_lengths
        self._total_lengths = sum(feature_max_lengths.values())
        self._values_dtype = values_dtype
        self._is_weighted = is_weighted
        self._device = device if device is not None else torch.device("meta")
        self._enable_uvm = enable_uvm
        self._permute_feature: Optional[List[int]] = None
        self.register_buffer("_feature_max_lengths_t", torch.tensor(list(feature_max_lengths.values()),
                                                                     dtype=torch.int32, device=self._device),
                             persistent=False)
        self._keys = list(feature_max_lengths.keys())
        self._lookup: KeyedJaggedTensorPoolLookup
        if enable_uvm and values_dtype == torch.int64:  # FBGEMM's UVM-caching TBE: CUDA only (ValueError elsewhere)
            from recsys_lib.modules._uvm_pool_lookups import UVMCachingInt64Lookup

            self._lookup = UVMCachingInt64Lookup(pool_size, feature_max_lengths, is_weighted, self._device)
        else:
            self._lookup = TensorJaggedIndexSelectLookup(
                pool_size, values_dtype, feature_max_lengths, is_weighted, self._device
            )
        for name, tensor in self._lookup.states_to_register():
            self.register_buffer(name, tensor)

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str, local_metadata: Dict[str, Any],
                              strict: bool, missing_keys: List[str], unexpected_keys: List[str],
                              error_msgs: List[str]) -> None:
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if not isinstance(self._lookup, TensorJaggedIndexSelectLookup):
            return  # UVM storage is written in place
        # the lookup reads the pool's buffers: point it at the loaded ones
        self._lookup._values = self.values
        self._lookup._key_lengths = self.key_lengths
        if self._is_weighted:
            self._lookup._weights = self.weights

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        result = super()._apply(fn, recurse)
        if not isinstance(self._lookup, TensorJaggedIndexSelectLookup):
            return result
        self._lookup._values, self._lookup._key_lengths = self.values, self.key_lengths
        if self._is_weighted:
            self._lookup._weights = self.weights
        return result

    @property
    def pool_size(self) -> int:
        return self._pool_size

    @property
    def feature_max_lengths(self) -> Dict[str, int]:
        return self._feature_max_lengths

    @property
    def values_dtype(self) -> torch.dtype:
        return self._values_dtype

    @property
    def is_weighted(self) -> bool:
        return self._is_weighted

    def lookup(self, ids: torch.Tensor) -> KeyedJaggedTensor:
        """Args: ids ``(N,)``. Returns: KJT, keys = the pool's features, stride ``N``."""
        check_pool_ids("KeyedJaggedTensorPool.lookup", ids, self._device, self._pool_size)
        jt = self._lookup.lookup(ids)
        n, f = ids.numel(), len(self._keys)
        lengths_sf = jt.lengths().view(n, f)
        values = _slot_to_feature_major(lengths_sf, jt.values(), n, f)
        w = jt.weights_or_none()
        weights = _slot_to_feature_major(lengths_sf, w, n, f) if w is not None else None
        return KeyedJaggedTensor.from_lengths_sync(keys=self._keys, values=values,
                                                   lengths=lengths_sf.t().flatten(), weights=weights)

    def _update_preproc(self, values: KeyedJaggedTensor) -> KeyedJaggedTensor:
        """The pool's features of ``values``, in pool order, each bag within its max length."""
        if self._permute_feature is None:
            self._permute_feature = pool_feature_order("KeyedJaggedTensorPool.update", values, self._keys)
        return check_bag_lengths("KeyedJaggedTensorPool.update", values.permute(self._permute_feature),
                                 self._feature_max_lengths)

    def update(self, ids: torch.Tensor, values: KeyedJaggedTensor) -> None:
        """Args: ids ``(N,)``; values: KJT of stride ``N`` holding every pool feature."""
        check_pool_ids("KeyedJaggedTensorPool.update", ids, self._device, self._pool_size)
        kjt = self._update_preproc(values)
        if kjt.values().dtype != self._values_dtype:
            raise TypeError(f"KeyedJaggedTensorPool.update: values dtype {kjt.values().dtype}, pool "
                            f"{self._values_dtype}")
        if kjt.stride() != ids.numel():
            raise ValueError(f"KeyedJaggedTensorPool.update: {ids.numel()} ids for a KJT of stride {kjt.stride()}")
        unique_ids, last = deterministic_dedup(ids)
        f, n = len(self._keys), ids.numel()
        lengths_fs = kjt.lengths().view(f, n)
        # feature-major segments of the kept samples -> slot-major (slot 0's features, slot 1's, ...)
        seg_start = _starts(kjt.lengths().flatten().to(torch.int64)).view(f, n)[:, last].t().flatten()
        seg_len = lengths_fs[:, last].t().flatten().to(torch.int64)
        row_values = _gather_segments(kjt.values(), seg_start, seg_len)
        w = kjt.weights_or_none()
        row_weights = _gather_segments(w, seg_start, seg_len) if (w is not None and self._is_weighted) else None
        self._lookup.update(unique_ids, JaggedTensor(values=row_values, lengths=seg_len, weights=row_weights))

    def forward(self, ids: torch.Tensor) -> KeyedJaggedTensor:
        return self.lookup(ids)
