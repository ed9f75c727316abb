"""Cheap input checks for the public constructors (Python only; skipped under TorchScript).

None of these checks reads tensor *data*: they look at dtypes, ranks and sizes, which live on the host, so they never
cause a device sync. Checks that must read data (lengths summing to the number of values, non-negative lengths,
monotone offsets) live in ``jagged_tensor_validator.validate_keyed_jagged_tensor`` and in the ``*_sync``
constructors, which read the lengths anyway.
"""

from typing import List, Optional

import torch

from recsys_lib.sparse._utils import is_integer_dtype


def check_tensor(name: str, t: object, owner: str) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor, got {type(t).__name__}")


def check_index_tensor(name: str, t: Optional[torch.Tensor], owner: str) -> None:
    if t is None:
        return
    check_tensor(name, t, owner)
    if not is_integer_dtype(t.dtype):
        raise TypeError(f"{owner}: {name} must have an integer dtype (int32/int64), got {t.dtype}")


def check_jagged_parts(
    owner: str,
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor],
    offsets: Optional[torch.Tensor],
) -> None:
    check_tensor("values", values, owner)
    if weights is not None:
        check_tensor("weights", weights, owner)
        if weights.dim() == 0 or values.dim() == 0 or weights.size(0) != values.size(0):
            raise ValueError(
                f"{owner}: weights must have one entry per value: weights shape {tuple(weights.shape)}, "
                f"values shape {tuple(values.shape)}"
            )
    check_index_tensor("lengths", lengths, owner)
    check_index_tensor("offsets", offsets, owner)
    if lengths is not None and offsets is not None and offsets.numel() != lengths.numel() + 1:
        raise ValueError(
            f"{owner}: offsets must have len(lengths) + 1 entries: got {offsets.numel()} offsets "
            f"for {lengths.numel()} lengths"
        )
    if lengths is None and offsets is not None and offsets.numel() == 0:
        raise ValueError(f"{owner}: offsets must hold at least the leading 0 (got an empty tensor)")


def check_keys(owner: str, keys: object) -> List[str]:
    if type(keys) is not list:
        if not isinstance(keys, (list, tuple)):
            raise TypeError(f"{owner}: keys must be a list of str, got {type(keys).__name__}")
        keys = list(keys)
    try:
        "".join(keys)  # C-speed check that every key is a str (no per-key Python loop on the hot path)
    except TypeError:
        bad = next(k for k in keys if not isinstance(k, str))
        raise TypeError(f"{owner}: keys must be str, got {bad!r} of type {type(bad).__name__}") from None
    return keys


def check_kt(keys: List[str], length_per_key: List[int], values: torch.Tensor, key_dim: int) -> None:
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"KeyedTensor: values must be a torch.Tensor, got {type(values).__name__}")
    if len(keys) != len(length_per_key):
        raise ValueError(f"KeyedTensor: {len(keys)} keys but {len(length_per_key)} entries in length_per_key")
    if len(set(keys)) != len(keys):
        dup = sorted({k for k in keys if keys.count(k) > 1})
        raise ValueError(f"KeyedTensor: duplicate keys {dup}")
    if key_dim < 0 or key_dim >= values.dim():
        raise ValueError(f"KeyedTensor: key_dim={key_dim} out of range for values of shape {tuple(values.shape)}")
    if sum(length_per_key) != values.size(key_dim):
        raise ValueError(
            f"KeyedTensor: length_per_key sums to {sum(length_per_key)} but values has {values.size(key_dim)} "
            f"entries along key_dim={key_dim} (shape {tuple(values.shape)})"
        )
