"""Input checks of ``KeyedJaggedTensor`` (Python only; skipped under TorchScript).

``check_kjt_layout`` runs in the constructor and reads only shapes (no host sync). ``check_lengths_sum`` runs in
``sync()`` (and so in ``from_lengths_sync`` / ``from_offsets_sync``) on the per-key sums that ``sync`` reads back
anyway: no extra sync. Data checks that would need one more (negative lengths, non-monotone offsets, id ranges)
live in ``jagged_tensor_validator.validate_keyed_jagged_tensor``.
"""

from typing import List, Optional

import torch


def check_kjt_layout(
    keys: List[str],
    values: torch.Tensor,
    lengths: Optional[torch.Tensor],
    offsets: Optional[torch.Tensor],
    stride: Optional[int],
    stride_per_key_per_rank: Optional[List[List[int]]],
) -> None:
    owner = "KeyedJaggedTensor"
    if values.dim() != 1:
        raise ValueError(f"{owner}: values must be 1-D (all ids, key-major), got shape {tuple(values.shape)}")
    if lengths is not None:
        n = lengths.numel()
    elif offsets is not None:
        n = offsets.numel() - 1
    else:
        return
    num_keys = len(keys)
    if stride_per_key_per_rank is not None:
        if len(stride_per_key_per_rank) != num_keys:
            raise ValueError(
                f"{owner}: stride_per_key_per_rank has {len(stride_per_key_per_rank)} rows for {num_keys} keys {keys}"
            )
        total = sum(sum(s) for s in stride_per_key_per_rank)
        if total != n:
            raise ValueError(
                f"{owner}: stride_per_key_per_rank sums to {total} batch entries but lengths has {n} entries"
            )
        return
    if stride is not None:
        if stride < 0:
            raise ValueError(f"{owner}: stride must be >= 0, got {stride}")
        if num_keys > 0 and n != stride * num_keys:
            raise ValueError(
                f"{owner}: lengths has {n} entries, expected stride * len(keys) = {stride} * {num_keys} = "
                f"{stride * num_keys}"
            )
        return
    if num_keys == 0:
        if n != 0:
            raise ValueError(f"{owner}: no keys but lengths has {n} entries")
        return
    if n % num_keys != 0:
        raise ValueError(
            f"{owner}: lengths has {n} entries, which is not divisible by the {num_keys} keys {keys} "
            f"(lengths are key-major: len(keys) * batch_size entries)"
        )


def check_lengths_sum(keys: List[str], length_per_key: List[int], values: torch.Tensor) -> None:
    total = sum(length_per_key)
    if total != values.numel():
        raise ValueError(
            f"KeyedJaggedTensor: lengths sum to {total} (per key {dict(zip(keys, length_per_key))}) but there are "
            f"{values.numel()} values"
        )
