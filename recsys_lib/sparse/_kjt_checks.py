"""Input checks of ``KeyedJaggedTensor`` (Python only; skipped under TorchScript).

``check_kjt_layout`` runs in the constructor and reads only shapes (no host sync). ``checked_length_per_key`` runs
where the per-key lengths are first read back (``sync()``, ``length_per_key()``, and so every op that needs them):
it folds its checks (negative lengths, non-decreasing offsets, lengths vs offsets, lengths past the values) into
that one transfer, so a batch costs no extra sync. Id ranges live in
``jagged_tensor_validator.validate_keyed_jagged_tensor``.
"""

from typing import List, Optional, Tuple

import torch

from recsys_lib.sparse._kjt_ops import _per_key_sums


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




def _locate(keys: List[str], stride_per_key: List[int], index: int) -> str:
    """``key 'f' (batch index b)`` for a flat position in the key-major lengths."""
    start = 0
    for k, s in zip(keys, stride_per_key):
        if index < start + s:
            return f"key '{k}' (batch index {index - start})"
        start += s
    return f"position {index}"


def checked_length_per_key(
    keys: List[str],
    values: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    stride_per_key: List[int],
    variable: bool,
) -> Tuple[List[int], int]:
    """Per-key value counts plus the first offset, read back in ONE host transfer, then checked on the host.

    One vectorised pass per batch (the sums ``length_per_key`` needs anyway, a min, and, when both lengths and
    offsets were given, a count of disagreements). Errors name the key, batch index and expected range.

    Returns:
        ``(length_per_key, base)`` where ``base = offsets[0]`` when offsets were given (else 0): offsets are read
        as indices into ``values``, so values before ``base`` belong to no bag.
    """
    num_keys = len(keys)
    flat = lengths.view(-1)
    sums = _per_key_sums(flat, num_keys, stride_per_key if variable else None)
    extras: List[torch.Tensor] = [flat.min() if flat.numel() > 0 else sums.new_zeros(())]
    diff = flat
    if offsets is not None:
        diff = offsets[1:] - offsets[:-1]
        extras.append(offsets[0])
        extras.append((diff != flat).sum())
    if flat.device.type == "cpu":
        # host tensors: reading each scalar is a plain memory read, cheaper than concatenating first
        lpk: List[int] = sums.tolist()
        tail = [int(t) for t in extras]
    else:
        # accelerators: everything comes back in ONE device-to-host transfer
        host: List[int] = torch.cat([sums.to(torch.int64), torch.stack(extras).to(torch.int64)]).tolist()
        lpk = host[:num_keys]
        tail = host[num_keys:]
    min_len = tail[0]
    base = tail[1] if offsets is not None else 0
    mismatches = tail[2] if offsets is not None else 0
    owner = "KeyedJaggedTensor"
    if mismatches != 0:
        at = int(torch.nonzero(diff != flat)[0].item())
        raise ValueError(
            f"{owner}: lengths and offsets were both given and disagree at {_locate(keys, stride_per_key, at)}: "
            f"lengths[{at}]={int(flat[at])} but offsets[{at + 1}]-offsets[{at}]={int(diff[at])}. "
            "Pass only one of them (or consistent ones)."
        )
    if min_len < 0:
        at = int(torch.nonzero(flat < 0)[0].item())
        where = _locate(keys, stride_per_key, at)
        if offsets is not None and int(offsets[at]) > int(offsets[at + 1]):
            raise ValueError(
                f"{owner}: offsets must be non-decreasing, but offsets[{at}]={int(offsets[at])} > "
                f"offsets[{at + 1}]={int(offsets[at + 1])} ({where})"
            )
        raise ValueError(f"{owner}: lengths must be >= 0, got lengths[{at}]={int(flat[at])} at {where}")
    if base < 0:
        raise ValueError(f"{owner}: offsets[0] must be in [0, {values.numel()}], got {base}")
    total = base + sum(lpk)
    if total > values.numel():
        end = base
        for k, n in zip(keys, lpk):
            end += n
            if end > values.numel():
                raise ValueError(
                    f"{owner}: key '{k}' needs values up to index {end} but there are only {values.numel()} "
                    f"values (lengths per key {dict(zip(keys, lpk))}"
                    + (f", offsets start at {base}" if base != 0 else "") + ")"
                )
    return lpk, base
