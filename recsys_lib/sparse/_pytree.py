"""pytree registration of the jagged types (so ``torch.export`` and ``tree_map`` see their tensors).

Leaves are the tensors; the context holds the host metadata (keys, strides, per-key lengths).
"""

from typing import Any, List, Optional, Tuple

import torch
import torch.utils._pytree as pytree

# Imported by jagged_tensor after its classes are defined (this module completes that one's import).
from recsys_lib.sparse.jagged_tensor import JaggedTensor, KeyedJaggedTensor, KeyedTensor

_JT_FIELDS = ["_values", "_weights", "_lengths", "_offsets"]
_KJT_FIELDS = ["_values", "_weights", "_lengths", "_offsets"]


def _jt_flatten(jt: JaggedTensor) -> Tuple[List[Optional[torch.Tensor]], None]:
    return [getattr(jt, f) for f in _JT_FIELDS], None


def _jt_flatten_with_keys(jt: JaggedTensor) -> Tuple[List[Tuple[Any, Optional[torch.Tensor]]], None]:
    return [(pytree.GetAttrKey(f), getattr(jt, f)) for f in _JT_FIELDS], None


def _jt_unflatten(values: List[Optional[torch.Tensor]], context: None) -> JaggedTensor:
    return JaggedTensor(values=values[0], weights=values[1], lengths=values[2], offsets=values[3])


def _static(x: Any) -> Any:
    """``x`` if it holds only plain ints, else ``None``: sizes a tracer made symbolic (a KJT built inside a traced
    program) are left out of the context, which must stay a static, copyable spec (they are recomputed)."""
    if x is None or type(x) is int:
        return x
    if isinstance(x, (list, tuple)) and all(type(v) is int for v in x):
        return x
    return None


def _kjt_context(kjt: KeyedJaggedTensor) -> Tuple[Any, ...]:
    return (kjt._keys, _static(kjt._stride), kjt._stride_per_key_per_rank, _static(kjt._length_per_key),
            _static(kjt._offset_per_key))


def _kjt_flatten(kjt: KeyedJaggedTensor) -> Tuple[List[Optional[torch.Tensor]], Tuple[Any, ...]]:
    return [getattr(kjt, f) for f in _KJT_FIELDS], _kjt_context(kjt)


def _kjt_flatten_with_keys(kjt: KeyedJaggedTensor) -> Tuple[List[Tuple[Any, Optional[torch.Tensor]]], Tuple[Any, ...]]:
    return [(pytree.GetAttrKey(f), getattr(kjt, f)) for f in _KJT_FIELDS], _kjt_context(kjt)


def _kjt_unflatten(values: List[Optional[torch.Tensor]], context: Tuple[Any, ...]) -> KeyedJaggedTensor:
    keys, stride, spkpr, lpk, opk = context
    return KeyedJaggedTensor(
        keys=list(keys), values=values[0], weights=values[1], lengths=values[2], offsets=values[3],
        stride=stride, stride_per_key_per_rank=spkpr, length_per_key=lpk, offset_per_key=opk,
    )


def _kt_flatten(kt: KeyedTensor) -> Tuple[List[torch.Tensor], Tuple[Any, ...]]:
    return [kt._values], (kt._keys, kt._length_per_key, kt._key_dim)


def _kt_flatten_with_keys(kt: KeyedTensor) -> Tuple[List[Tuple[Any, torch.Tensor]], Tuple[Any, ...]]:
    return [(pytree.GetAttrKey("_values"), kt._values)], (kt._keys, kt._length_per_key, kt._key_dim)


def _kt_unflatten(values: List[torch.Tensor], context: Tuple[Any, ...]) -> KeyedTensor:
    keys, lpk, key_dim = context
    return KeyedTensor(keys=list(keys), length_per_key=list(lpk), values=values[0], key_dim=key_dim)


def register_pytree_nodes() -> None:
    """Idempotent: registers JT, KJT and KT with ``torch.utils._pytree`` (called on import)."""
    for cls, flat, flat_keys, unflat in (
        (JaggedTensor, _jt_flatten, _jt_flatten_with_keys, _jt_unflatten),
        (KeyedJaggedTensor, _kjt_flatten, _kjt_flatten_with_keys, _kjt_unflatten),
        (KeyedTensor, _kt_flatten, _kt_flatten_with_keys, _kt_unflatten),
    ):
        if cls in pytree.SUPPORTED_NODES:
            continue
        pytree.register_pytree_node(
            cls, flat, unflat, flatten_with_keys_fn=flat_keys,
            serialized_type_name=f"recsys_lib.sparse.jagged_tensor.{cls.__name__}",
        )


def flatten_kjt_list(kjt_arr: List[KeyedJaggedTensor]) -> Tuple[List[Optional[torch.Tensor]], List[Any]]:
    """All KJTs' tensors in one flat list plus one context per KJT (for passing KJTs through fx/export)."""
    flat: List[Optional[torch.Tensor]] = []
    contexts: List[Any] = []
    for kjt in kjt_arr:
        leaves, ctx = _kjt_flatten(kjt)
        flat.extend(leaves)
        contexts.append(ctx)
    return flat, contexts


def unflatten_kjt_list(values: List[Optional[torch.Tensor]], contexts: List[Any]) -> List[KeyedJaggedTensor]:
    n = len(_KJT_FIELDS)
    if len(values) != n * len(contexts):
        raise ValueError(f"unflatten_kjt_list: {len(values)} tensors for {len(contexts)} contexts (need {n} each)")
    return [_kjt_unflatten(values[i * n : (i + 1) * n], ctx) for i, ctx in enumerate(contexts)]
