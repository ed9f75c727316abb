"""Input checks of ``KeyedJaggedTensor`` (Python only; skipped under TorchScript).

``check_kjt_inputs`` runs in the constructor and reads only shapes (no host sync). Where the per-key lengths are
first read back (``sync()``, ``length_per_key()``, and so every op that needs them), ``uniform_host_length_per_key``
(the hot path: uniform batch, contiguous CPU lengths, no offsets) or ``checked_length_per_key`` (everything else)
fold the checks (negative lengths, non-decreasing offsets, lengths vs offsets, lengths past the values) into that
one read, so a batch costs no extra sync. Id ranges live in ``jagged_tensor_validator.validate_keyed_jagged_tensor``.

Cost on CPU (a plain host tensor): the lengths are read through a zero-copy NumPy view (``ops/_host.py``), so no
torch dispatch. Small int32 batches pay ONE pass (per-key sums of the lengths read as unsigned: a negative length
adds ``2**32`` to its key's total); larger ones a bitwise-OR pass (its sign bit says whether any length is
negative, its magnitude bounds the largest length, which proves int32 per-key sums exact) plus the sums. The
slow, precise diagnosis (which key, which batch index) runs only when a check fails.
"""

from typing import List, Optional, Tuple

import numpy as np
import torch

from recsys_lib.ops._host import host_array
from recsys_lib.pt2.checks import is_pt2_compiling
from recsys_lib.sparse._checks import check_jagged_parts, check_keys
from recsys_lib.sparse._kjt_ops import _per_key_sums, compute_length_per_key
from recsys_lib.sparse._utils import cumsum_list

_INDEX_DTYPES = (torch.int32, torch.int64, torch.int16, torch.int8, torch.uint8)
_HOST_INDEX_DTYPES = (torch.int32, torch.int64)  # the hot path's lengths dtypes


def check_kjt_inputs(
    keys: List[str],
    values: torch.Tensor,
    weights: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor],
    offsets: Optional[torch.Tensor],
    stride: Optional[int],
    stride_per_key_per_rank: Optional[List[List[int]]],
) -> List[str]:
    """All constructor checks (shapes and dtypes only); returns ``keys`` as a list.

    The common input (a list of str keys, 1-D values, integer lengths of ``len(keys) * B`` entries, nothing else)
    is accepted after a few attribute reads; anything else takes the full checks, which name what is wrong.
    """
    if (
        type(keys) is list and weights is None and offsets is None and stride is None
        and stride_per_key_per_rank is None and isinstance(lengths, torch.Tensor) and isinstance(values, torch.Tensor)
        and lengths.dtype in _INDEX_DTYPES and values.dim() == 1 and len(keys) > 0
        and lengths.numel() % len(keys) == 0
    ):
        try:
            "".join(keys)  # C-speed: every key is a str
            return keys
        except TypeError:
            pass
    keys = check_keys("KeyedJaggedTensor", keys)
    check_jagged_parts("KeyedJaggedTensor", values, weights, lengths, offsets)
    check_kjt_layout(keys, values, lengths, offsets, stride, stride_per_key_per_rank)
    return keys


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


def is_traced(t: torch.Tensor) -> bool:
    """Whether a PT2 tracer sees ``t`` (its data cannot be read): cheap tests first, fake-mode lookup last."""
    if torch.compiler.is_compiling() or torch.compiler.is_exporting():
        return True
    return type(t) is not torch.Tensor and is_pt2_compiling()


def _locate(keys: List[str], stride_per_key: List[int], index: int) -> str:
    """``key 'f' (batch index b)`` for a flat position in the key-major lengths."""
    start = 0
    for k, s in zip(keys, stride_per_key):
        if index < start + s:
            return f"key '{k}' (batch index {index - start})"
        start += s
    return f"position {index}"


def _row_sums(rows: np.ndarray, bits: int) -> List[int]:
    """Exact row sums of a 2-D integer array whose elements OR to ``bits``.

    The input's int32 when no row can overflow it (~2x faster than widening), else int64, else (absurd lengths
    near ``2**63``) exact Python ints. ``bits < 0`` (negative lengths: the caller raises) sums in int64.
    """
    per = rows.shape[1]
    if bits >= 0 and rows.dtype == np.int32 and bits * per < 2**31:
        return np.add.reduce(rows, axis=1, dtype=np.int32).tolist()
    if bits < 0 or bits * per < 2**63:
        return np.add.reduce(rows, axis=1, dtype=np.int64).tolist()
    return [int(x) for x in np.add.reduce(rows.astype(object), axis=1)]


def uniform_host_length_per_key(lengths: torch.Tensor, num_keys: int, num_values: int) -> Optional[List[int]]:
    """The hot path: per-key value counts of a uniform-batch KJT given by contiguous CPU lengths, checked.

    ``None`` when a check fails (or the input is unusual): the caller then takes :func:`checked_length_per_key`,
    which names the problem. int32 lengths are summed as unsigned into int64, so one pass also catches negative
    lengths (each adds at least ``2**31`` to its key's total, which then exceeds ``num_values``).
    """
    n = lengths.numel()
    if n == 0 or num_values >= 2**31:
        return None
    arr = host_array(lengths)
    per = n // num_keys
    if arr.dtype == np.int32 and n <= 16384:
        lpk: List[int] = np.add.reduce(arr.view(np.uint32).reshape(num_keys, per), axis=1, dtype=np.int64).tolist()
    else:
        bits = int(np.bitwise_or.reduce(arr))  # < 0 iff some length is negative; else max <= bits < 2 * max
        if bits < 0:
            return None
        lpk = _row_sums(arr.reshape(num_keys, per), bits)
    if sum(lpk) > num_values:
        return None
    return lpk


def _host_stats(
    flat: torch.Tensor, offsets: Optional[torch.Tensor], num_keys: int, stride_per_key: Optional[List[int]]
) -> Tuple[List[int], bool, int, bool]:
    """CPU: ``(length_per_key, any negative length, offsets[0], lengths disagree with offsets)`` via NumPy views."""
    flat = flat.contiguous()  # no-op when already contiguous; the local keeps any copy alive for the views
    arr = host_array(flat)
    if arr.size == 0:
        negative = False
        lpk = [0] * num_keys
    else:
        bits = int(np.bitwise_or.reduce(arr))  # < 0 iff some length is negative; else max <= bits < 2 * max
        negative = bits < 0
        if stride_per_key is not None:  # VBE: one int64 running sum, read at the key boundaries
            ends = np.asarray(cumsum_list(stride_per_key), dtype=np.int64)
            cs = np.zeros(arr.size + 1, dtype=np.int64 if bits < 0 or bits * arr.size < 2**63 else object)
            np.cumsum(arr, dtype=cs.dtype, out=cs[1:])
            lpk = [int(x) for x in (cs[ends[1:]] - cs[ends[:-1]])]
        else:
            lpk = _row_sums(arr.reshape(num_keys, arr.size // num_keys), bits)
    base = 0
    mismatch = False
    if offsets is not None:
        offsets = offsets.reshape(-1).contiguous()
        off = host_array(offsets)
        base = int(off[0])
        mismatch = not np.array_equal(off[1:] - off[:-1], arr)
    return lpk, negative, base, mismatch


def _device_stats(
    flat: torch.Tensor, offsets: Optional[torch.Tensor], num_keys: int, stride_per_key: Optional[List[int]]
) -> Tuple[List[int], bool, int, bool]:
    """Accelerators (and tensor subclasses): the same facts, read back in ONE device-to-host transfer."""
    sums = _per_key_sums(flat, num_keys, stride_per_key)
    extras: List[torch.Tensor] = [flat.min() if flat.numel() > 0 else sums.new_zeros(())]
    if offsets is not None:
        extras.append(offsets[0])
        extras.append(((offsets[1:] - offsets[:-1]) != flat).sum())
    host: List[int] = torch.cat([sums.to(torch.int64), torch.stack(extras).to(torch.int64)]).tolist()
    tail = host[num_keys:]
    base = tail[1] if offsets is not None else 0
    mismatch = offsets is not None and tail[2] != 0
    return host[:num_keys], tail[0] < 0, base, mismatch


def checked_length_per_key(
    keys: List[str],
    values: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    stride_per_key: Optional[List[int]],
) -> Tuple[List[int], int]:
    """Per-key value counts plus the first offset, read back once, then checked on the host.

    ``stride_per_key``: the per-key batch sizes of a variable-batch (VBE) KJT, ``None`` for a uniform one.

    One vectorised pass per batch (the sums ``length_per_key`` needs anyway plus a sign test, and, when offsets
    were given, a comparison with the lengths). Errors name the key, batch index and expected range.

    Returns:
        ``(length_per_key, base)`` where ``base = offsets[0]`` when offsets were given (else 0): offsets are read
        as indices into ``values``, so values before ``base`` belong to no bag.
    """
    num_keys = len(keys)
    flat = lengths.view(-1)
    host = flat.device.type == "cpu" and type(flat) is torch.Tensor
    if host and offsets is not None:
        host = offsets.device.type == "cpu" and type(offsets) is torch.Tensor
    if host:
        lpk, negative, base, mismatch = _host_stats(flat, offsets, num_keys, stride_per_key)
    else:
        lpk, negative, base, mismatch = _device_stats(flat, offsets, num_keys, stride_per_key)
    if negative or mismatch or base < 0 or base + sum(lpk) > values.numel():
        spk = stride_per_key if stride_per_key is not None else [flat.numel() // num_keys] * num_keys
        _raise_bad_lengths(keys, values, flat, offsets, spk, lpk, base, negative, mismatch)
    return lpk, base


def eager_length_per_key(
    keys: List[str],
    values: torch.Tensor,
    lengths: torch.Tensor,
    offsets: Optional[torch.Tensor],
    variable: bool,
    stride_per_key: Optional[List[int]],
) -> Tuple[List[int], int]:
    """``KeyedJaggedTensor.length_per_key`` in eager mode: ``(length_per_key, base)``, checked in the same read.

    The hot path (:func:`uniform_host_length_per_key`) when it applies; under a PT2 tracer the plain sums (the checks
    read data, a traced program trusts its ids); else :func:`checked_length_per_key`. ``stride_per_key`` is the KJT's
    cached one (set for VBE).

    ``base`` is where the offsets start: offsets that do not start at 0 are read as indices into ``values`` (as
    TorchRec's ``JaggedTensor`` does) and the KJT re-bases itself once, so ``values()`` / ``offsets()`` afterwards
    start at the first bag. Values after the last bag stay in ``values()`` and are ignored by every op.
    """
    if (
        offsets is None and not variable and type(lengths) is torch.Tensor
        and lengths.device.type == "cpu" and lengths.dtype in _HOST_INDEX_DTYPES and lengths.is_contiguous()
        and not torch.compiler.is_compiling() and not torch.compiler.is_exporting()
    ):
        fast = uniform_host_length_per_key(lengths, len(keys), values.numel())
        if fast is not None:
            return fast, 0
    if is_traced(lengths):
        return compute_length_per_key(lengths, len(keys), stride_per_key), 0
    return checked_length_per_key(keys, values, lengths, offsets, stride_per_key if variable else None)


def _raise_bad_lengths(
    keys: List[str],
    values: torch.Tensor,
    flat: torch.Tensor,
    offsets: Optional[torch.Tensor],
    stride_per_key: List[int],
    lpk: List[int],
    base: int,
    negative: bool,
    mismatch: bool,
) -> None:
    """The precise error for a batch that failed a check (slow path: reads what it needs to name the culprit)."""
    owner = "KeyedJaggedTensor"
    if mismatch and offsets is not None:
        diff = offsets[1:] - offsets[:-1]
        at = int(torch.nonzero(diff != flat)[0].item())
        raise ValueError(
            f"{owner}: lengths and offsets were both given and disagree at {_locate(keys, stride_per_key, at)}: "
            f"lengths[{at}]={int(flat[at])} but offsets[{at + 1}]-offsets[{at}]={int(diff[at])}. "
            "Pass only one of them (or consistent ones)."
        )
    if negative:
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
    end = base
    for k, n in zip(keys, lpk):
        end += n
        if end > values.numel():
            raise ValueError(
                f"{owner}: key '{k}' needs values up to index {end} but there are only {values.numel()} "
                f"values (lengths per key {dict(zip(keys, lpk))}"
                + (f", offsets start at {base}" if base != 0 else "") + ")"
            )
