"""Static constructors of the jagged types: the bodies of ``JaggedTensor.empty`` / ``empty_like`` / ``from_dense*``,
``KeyedJaggedTensor.from_*_sync`` / ``concat`` / ``empty`` / ``empty_like`` / ``from_jt_dict`` and ``pin_memory``
(eager only), ``KeyedTensor.from_tensor_list``. The methods in ``jagged_tensor`` call these.

Only static and eager-only methods delegate here: TorchScript compiles a class's instance methods while it compiles
the class, when a helper whose signature names that class cannot be compiled yet (instance methods use helpers
that take tensors and host lists, see ``_kjt_views``); static methods compile on first call, after the class.

``unchecked_kjt`` is the eager fast path for results made of pieces of valid KJTs (split / permute / concat, and the
per-sharding split of a sharded module's input): it fills the fields directly and skips the constructor's checks.
Under TorchScript every builder calls the constructor instead.

Imported by ``jagged_tensor`` after its classes are defined (this module needs them: TorchScript resolves the
annotations through this module's globals).
"""

from typing import Dict, List, Optional, Tuple

import torch

from recsys_lib.sparse import _kjt_ops as ops
from recsys_lib.sparse._utils import cumsum_list, flat
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor


# ----- JaggedTensor -----
def jt_empty(
    is_weighted: bool,
    device: Optional[torch.device],
    values_dtype: Optional[torch.dtype],
    weights_dtype: Optional[torch.dtype],
    lengths_dtype: torch.dtype,
) -> JaggedTensor:
    weights = torch.empty(0, dtype=weights_dtype, device=device) if is_weighted else None
    return JaggedTensor(
        values=torch.empty(0, dtype=values_dtype, device=device),
        offsets=torch.zeros(1, dtype=lengths_dtype, device=device),
        lengths=torch.empty(0, dtype=lengths_dtype, device=device),
        weights=weights,
    )


def jt_empty_like(jt: JaggedTensor, device: Optional[torch.device]) -> JaggedTensor:
    dev = jt.device() if device is None else device
    w = jt.weights_or_none()
    return jt_empty(
        is_weighted=w is not None,
        device=dev,
        values_dtype=jt.values().dtype,
        weights_dtype=None if w is None else w.dtype,
        lengths_dtype=jt.lengths().dtype,
    )


def jt_from_dense_lengths(
    values: torch.Tensor, lengths: torch.Tensor, weights: Optional[torch.Tensor]
) -> JaggedTensor:
    """From a padded (B, L[, D]) tensor and the valid length of each row (B,)."""
    mask = torch.arange(values.size(1), device=values.device).unsqueeze(0) < lengths.view(-1, 1)
    w: Optional[torch.Tensor] = None
    if weights is not None:
        w = weights[mask]
    return JaggedTensor(values=values[mask], lengths=lengths, weights=w, offsets=None)


def jt_from_dense(values: List[torch.Tensor], weights: Optional[List[torch.Tensor]]) -> JaggedTensor:
    """From a list of B tensors, one bag each."""
    lengths = torch.tensor([v.size(0) for v in values], dtype=torch.int32, device=values[0].device)
    w: Optional[torch.Tensor] = None
    if weights is not None:
        w = torch.cat(weights)
    return JaggedTensor(values=torch.cat(values), lengths=lengths, weights=w, offsets=None)


# ----- KeyedJaggedTensor -----
def unchecked_kjt(keys, values, weights, lengths, stride, spkpr, stride_per_key, length_per_key, offset_per_key,
                  inverse_indices):  # noqa: ANN001 - eager-only helper, never compiled by TorchScript
    """A KJT from trusted parts, without input checks (eager only: call it under ``not torch.jit.is_scripting()``).

    The fields must match ``KeyedJaggedTensor.__init__``; offsets and the remaining caches start empty.
    """
    if spkpr is not None and stride_per_key is None:
        stride_per_key = ops.stride_per_key_from_rank(spkpr)
    kjt = object.__new__(KeyedJaggedTensor)
    kjt.__dict__.update(
        _keys=keys, _values=values, _weights=weights, _lengths=lengths, _offsets=None, _stride=stride,
        _stride_per_key_per_rank=spkpr, _variable_stride_per_key=spkpr is not None, _stride_per_key=stride_per_key,
        _length_per_key=length_per_key, _offset_per_key=offset_per_key, _lengths_offset_per_key=None,
        _index_per_key=None, _jt_dict=None, _inverse_indices=inverse_indices,
    )
    return kjt


def concat(kjt_list: List[KeyedJaggedTensor]) -> KeyedJaggedTensor:
    """``KeyedJaggedTensor.concat``: keys, values, lengths and weights one KJT after another (VBE when the batch
    sizes differ). Per-key lengths are kept when every input has them cached."""
    if len(kjt_list) == 0:
        raise ValueError("concat: expected at least one KeyedJaggedTensor")
    if len(kjt_list) == 1:
        return kjt_list[0]
    keys: List[str] = []
    length_per_key: Optional[List[int]] = []
    variable = False
    first_stride = kjt_list[0].stride()
    for kjt in kjt_list:
        keys.extend(kjt.keys())
        if kjt.variable_stride_per_key() or kjt.stride() != first_stride:
            variable = True
        lpk = kjt.length_per_key_or_none()
        if lpk is None or length_per_key is None:
            length_per_key = None
        else:
            length_per_key.extend(lpk)
    spkpr: Optional[List[List[int]]] = None
    if variable:
        spkpr = []
        for kjt in kjt_list:
            spkpr.extend(kjt._spkpr_or_uniform())
    weights_list: List[Optional[torch.Tensor]] = [k.weights_or_none() for k in kjt_list]
    values = torch.cat([k.values() for k in kjt_list])
    weights = ops.concat_optional(weights_list, "weights")
    lengths = torch.cat([flat(k.lengths()) for k in kjt_list])
    stride: Optional[int] = None if variable else first_stride
    opk: Optional[List[int]] = None if length_per_key is None else cumsum_list(length_per_key)
    if not torch.jit.is_scripting():
        return unchecked_kjt(keys, values, weights, lengths, stride, spkpr, None, length_per_key, opk, None)
    return KeyedJaggedTensor(
        keys=keys, values=values, weights=weights, lengths=lengths, offsets=None, stride=stride,
        stride_per_key_per_rank=spkpr, stride_per_key=None, length_per_key=length_per_key,
        lengths_offset_per_key=None, offset_per_key=opk, index_per_key=None, jt_dict=None, inverse_indices=None,
    )


def synced(
    keys: List[str],
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor],
    offsets: Optional[torch.Tensor],
    stride: Optional[int],
    stride_per_key_per_rank: Optional[List[List[int]]],
    inverse_indices: Optional[Tuple[List[str], torch.Tensor]],
) -> KeyedJaggedTensor:
    """``from_lengths_sync`` / ``from_offsets_sync``: the KJT with its per-key caches filled (one host sync)."""
    kjt = KeyedJaggedTensor(
        keys=keys, values=values, weights=weights, lengths=lengths, offsets=offsets, stride=stride,
        stride_per_key_per_rank=stride_per_key_per_rank, inverse_indices=inverse_indices, stride_per_key=None,
        length_per_key=None, lengths_offset_per_key=None, offset_per_key=None, index_per_key=None, jt_dict=None,
    )
    return kjt.sync()


def empty(
    is_weighted: bool,
    device: Optional[torch.device],
    values_dtype: Optional[torch.dtype],
    weights_dtype: Optional[torch.dtype],
    lengths_dtype: torch.dtype,
) -> KeyedJaggedTensor:
    weights = torch.empty(0, dtype=weights_dtype, device=device) if is_weighted else None
    return KeyedJaggedTensor(
        keys=[], values=torch.empty(0, dtype=values_dtype, device=device), weights=weights,
        lengths=torch.empty(0, dtype=lengths_dtype, device=device), stride=0, offsets=None,
        stride_per_key_per_rank=None, stride_per_key=None, length_per_key=None, lengths_offset_per_key=None,
        offset_per_key=None, index_per_key=None, jt_dict=None, inverse_indices=None,
    )


def empty_like(kjt: KeyedJaggedTensor, device: Optional[torch.device]) -> KeyedJaggedTensor:
    """No keys; ``kjt``'s stride and dtypes, on ``device`` (``None``: ``kjt``'s device)."""
    dev = kjt.device() if device is None else device
    w = kjt.weights_or_none()
    return KeyedJaggedTensor(
        keys=[], values=torch.empty(0, dtype=kjt.values().dtype, device=dev),
        weights=None if w is None else torch.empty(0, dtype=w.dtype, device=dev),
        lengths=torch.empty(0, dtype=kjt.lengths().dtype, device=dev), stride=kjt.stride(), offsets=None,
        stride_per_key_per_rank=None, stride_per_key=None, length_per_key=None, lengths_offset_per_key=None,
        offset_per_key=None, index_per_key=None, jt_dict=None, inverse_indices=None,
    )


def from_jt_dict(jt_dict: Dict[str, JaggedTensor]) -> KeyedJaggedTensor:
    """Keys in dict order; the KJT is VBE (one rank per key) when the JTs' batch sizes differ."""
    keys = list(jt_dict.keys())
    if len(keys) == 0:
        raise ValueError("from_jt_dict: expected at least one JaggedTensor")
    jts = list(jt_dict.values())
    strides = [jt.lengths().numel() for jt in jts]
    variable = min(strides) != max(strides)
    return KeyedJaggedTensor(
        keys=keys, values=torch.cat([jt.values() for jt in jts]),
        weights=ops.concat_optional([jt.weights_or_none() for jt in jts], "weights"),
        lengths=torch.cat([jt.lengths() for jt in jts]), stride=None if variable else strides[0],
        stride_per_key_per_rank=[[s] for s in strides] if variable else None, offsets=None, stride_per_key=None,
        length_per_key=None, lengths_offset_per_key=None, offset_per_key=None, index_per_key=None, jt_dict=None,
        inverse_indices=None,
    )


def pin_memory(kjt: KeyedJaggedTensor) -> KeyedJaggedTensor:
    """``kjt`` copied into page-locked host memory (eager only)."""
    w, lengths, offsets = kjt._weights, kjt._lengths, kjt._offsets
    ii = kjt._inverse_indices
    return KeyedJaggedTensor(
        keys=kjt._keys, values=kjt._values.pin_memory(), weights=None if w is None else w.pin_memory(),
        lengths=None if lengths is None else lengths.pin_memory(),
        offsets=None if offsets is None else offsets.pin_memory(), stride=kjt._stride,
        stride_per_key_per_rank=kjt._stride_per_key_per_rank, length_per_key=kjt._length_per_key,
        offset_per_key=kjt._offset_per_key, inverse_indices=None if ii is None else (ii[0], ii[1].pin_memory()),
        stride_per_key=None, lengths_offset_per_key=None, index_per_key=None, jt_dict=None,
    )


# ----- KeyedTensor -----
def kt_from_tensor_list(keys: List[str], tensors: List[torch.Tensor], key_dim: int, cat_dim: int) -> KeyedTensor:
    if len(keys) != len(tensors):
        raise ValueError(f"from_tensor_list: {len(keys)} keys but {len(tensors)} tensors")
    length_per_key = [t.shape[key_dim] for t in tensors]
    return KeyedTensor(keys=keys, length_per_key=length_per_key, values=torch.cat(tensors, cat_dim), key_dim=key_dim)
