"""Multi-probe zero-collision hash (ZCH): slot lookup and insertion over an identity table.

The table is ``identities (Z, 1)`` int64, ``-1`` = empty, optional ``metadata (Z, 1)`` int32 (TTL expiry hour or
last access hour). An id ``x`` starts at ``h = murmur3_2x64(x) mod block`` (unsigned) inside its bucket
``[offset, offset + size)`` and probes ``h, h+1, ...`` (circularly) for at most ``max_probe`` slots:

* lookup (read-only): the first slot holding ``x``; none -> fallback ``h mod size`` (or ``-1`` when
  ``disable_fallback``). This is FBGEMM's ``zero_collision_hash(readonly=True)``, which the CPU build has; we call
  it there and keep ``lookup_reference`` (plain torch) as its reference.
* insert (training): ids already in their probe window hit; the others claim, in probe order, the first empty
  slot (or expired one: ``metadata < eviction_threshold``, TTL policy), or after a full window the most expired
  slot (LRU policy). FBGEMM's CPU build has no insert (it asserts ``readonly``), so ``insert`` does it here,
  vectorised: one round per probe step over the still-pending unique ids; ids racing for one slot in a round
  are settled in favour of the one that occurs first in the batch (FBGEMM's GPU kernel settles them by an atomic
  CAS, any winner).
"""

from typing import List, Optional, Tuple

import numpy as np
import torch

from recsys_lib.ops._fbgemm import fbgemm_available

_M64 = 1 << 64
_NUMPY_TAIL = 65536  # pending ids below which insert rounds run on numpy views (CPU)


def _s64(c: int) -> int:
    return c - _M64 if c >= 1 << 63 else c


_C1, _C2 = _s64(0x87C37B91114253D5), _s64(0x4CF5AD432745937F)
_F1, _F2 = _s64(0xFF51AFD7ED558CCD), _s64(0xC4CEB9FE1A85EC53)


def _lsr(x: torch.Tensor, s: int) -> torch.Tensor:
    # logical shift right of int64 bit patterns (torch's >> is arithmetic)
    return (x >> s) & ((1 << (64 - s)) - 1)


def _rotl(x: torch.Tensor, r: int) -> torch.Tensor:
    return (x << r) | _lsr(x, 64 - r)


def _rotl_int(v: int, r: int) -> int:
    return ((v << r) | (v >> (64 - r))) % _M64


def _fmix(h: torch.Tensor) -> torch.Tensor:
    h = h ^ _lsr(h, 33)
    h = h * _F1
    h = h ^ _lsr(h, 33)
    h = h * _F2
    return h ^ _lsr(h, 33)


def murmur_hash3_2x64(x: torch.Tensor, y: int = 0, seed: int = 0) -> torch.Tensor:
    """MurmurHash3 x64-128 of the 16 bytes ``(x, y)``, both halves xor-ed: FBGEMM's ZCH slot hash.

    Args:
        x: ``(N,)`` int64 ids (bit patterns read as uint64).
        y: second 64-bit word.
        seed: hash seed.

    Returns:
        ``(N,)`` int64 holding the uint64 hash bit pattern.
    """
    x = x.to(torch.int64)
    k1 = _rotl(x * _C1, 31) * _C2
    h1 = _rotl(torch.full_like(x, _s64(seed % _M64)) ^ k1, 27) + _s64(seed % _M64)  # h2 is still `seed` here
    h1 = h1 * 5 + 0x52DCE729
    # second block (y, seed are host ints): exact uint64 arithmetic in Python
    k2 = _rotl_int((y * 0x4CF5AD432745937F) % _M64, 33) * 0x87C37B91114253D5 % _M64
    h2 = (torch.full_like(x, _s64(_rotl_int((seed % _M64) ^ k2, 31))) + h1) * 5 + 0x38495AB5
    h1 = h1 ^ 16
    h2 = h2 ^ 16
    h1 = h1 + h2
    h2 = h2 + h1
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = h1 + h2
    h2 = h2 + h1
    return h1 ^ h2


def unsigned_mod(h: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """``uint64(h) mod m`` for int64 bit patterns ``h`` and positive ``m`` (scalar tensor or ``(N,)``)."""
    r = torch.remainder(h, m)
    # uint64(h) = h + 2**64 for h < 0; 2**64 mod m = 2 * ((2**63 - 1) mod m + 1) mod m
    two63 = torch.remainder(torch.remainder(torch.full_like(m, (1 << 63) - 1), m) + 1, m)
    two64 = torch.remainder(two63 * 2, m)
    return torch.where(h < 0, torch.remainder(r + two64, m), r)


def _sizes(
    n: int, identities: torch.Tensor, local_sizes: Optional[torch.Tensor], offsets: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    if local_sizes is None:
        size = torch.full((n,), identities.size(0), dtype=torch.int64, device=identities.device)
        return size, torch.zeros_like(size)
    assert offsets is not None
    return local_sizes.to(torch.int64), offsets.to(torch.int64)


def lookup_reference(
    ids: torch.Tensor,
    identities: torch.Tensor,
    max_probe: int,
    local_sizes: Optional[torch.Tensor] = None,
    offsets: Optional[torch.Tensor] = None,
    disable_fallback: bool = False,
    opt_in_prob: int = -1,
    num_reserved_slots: int = -1,
) -> torch.Tensor:
    """Read-only slot of each id in plain torch (the reference of FBGEMM's read-only op), ``(N,)`` int64."""
    size, off = _sizes(ids.numel(), identities, local_sizes, offsets)
    block = size - num_reserved_slots if opt_in_prob != -1 else size
    h = murmur_hash3_2x64(ids)
    start = unsigned_mod(h, block)
    out = torch.full_like(ids, -1, dtype=torch.int64)
    table = identities.view(-1)
    for p in range(max_probe):
        slot = off + torch.remainder(start + p, block)
        hit = (out < 0) & (table[slot] == ids)
        out = torch.where(hit, slot, out)
    if not disable_fallback:
        out = torch.where(out < 0, off + _fallback(h, size, block, opt_in_prob, num_reserved_slots), out)
    return out


def _fallback(h: torch.Tensor, size: torch.Tensor, block: torch.Tensor, opt_in_prob: int, reserved: int) -> torch.Tensor:
    # no slot in the window: the hash slot of the bucket, or a reserved slot when opt-in is on
    if opt_in_prob == -1:
        return unsigned_mod(h, size)
    return block + unsigned_mod(h, torch.full_like(h, reserved))


def lookup(
    ids: torch.Tensor,
    identities: torch.Tensor,
    max_probe: int,
    local_sizes: Optional[torch.Tensor] = None,
    offsets: Optional[torch.Tensor] = None,
    disable_fallback: bool = False,
    opt_in_prob: int = -1,
    num_reserved_slots: int = -1,
) -> torch.Tensor:
    """Read-only slot of each id (FBGEMM's kernel; the reference where FBGEMM is missing)."""
    if ids.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=ids.device)
    if not (fbgemm_available() and hasattr(torch.ops.fbgemm, "zero_collision_hash")):
        return lookup_reference(ids, identities, max_probe, local_sizes, offsets, disable_fallback, opt_in_prob,
                                num_reserved_slots)
    out, _ = torch.ops.fbgemm.zero_collision_hash(
        ids.to(identities.dtype), identities, max_probe, circular_probe=True, readonly=True,
        local_sizes=local_sizes, offsets=offsets, disable_fallback=disable_fallback,
        opt_in_prob=opt_in_prob, num_reserved_slots=num_reserved_slots,
    )
    return out


def insert(
    ids: torch.Tensor,
    identities: torch.Tensor,
    max_probe: int,
    local_sizes: Optional[torch.Tensor] = None,
    offsets: Optional[torch.Tensor] = None,
    disable_fallback: bool = False,
    metadata: Optional[torch.Tensor] = None,
    input_metadata: Optional[torch.Tensor] = None,
    eviction_threshold: int = -1,
    eviction_policy: int = 0,
    metadata_val: int = 0,
    opt_in_prob: int = -1,
    num_reserved_slots: int = -1,
    opt_in_rands: Optional[torch.Tensor] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Find or claim a slot for every id, updating ``identities`` / ``metadata`` in place.

    Args:
        ids: ``(N,)`` int64.
        identities: ``(Z, 1)`` int64 table, ``-1`` empty.
        max_probe: probe window.
        local_sizes: ``(N,)`` bucket size per id (default: the whole table).
        offsets: ``(N,)`` bucket start per id.
        disable_fallback: ids that find no slot get ``-1`` instead of their hash slot.
        metadata: ``(Z, 1)`` int32 slot metadata, or None (no eviction).
        input_metadata: ``(N,)`` int32 metadata written to the slots of the ids (default ``metadata_val``).
        eviction_threshold: slots with ``metadata < eviction_threshold`` may be taken (``-1``: never).
        eviction_policy: 0 = take the first expired slot in probe order, 1 = the most expired after a full window.
        metadata_val: metadata written when ``input_metadata`` is None.
        opt_in_prob: percent of new ids admitted (``-1``: all); the others share the reserved slots.
        num_reserved_slots: reserved slots at the end of each bucket (with ``opt_in_prob``).
        opt_in_rands: ``(N,)`` int draws in ``[0, 100)``: a new id is admitted when its draw ``< opt_in_prob``.

    Returns:
        ``(slots (N,), evicted slots (E,))``.
    """
    n = ids.numel()
    if n == 0:
        return torch.empty((0,), dtype=torch.int64, device=ids.device), torch.empty((0,), dtype=torch.int64)
    size, off = _sizes(n, identities, local_sizes, offsets)
    table = identities.view(-1)
    meta_in = input_metadata if input_metadata is not None else torch.full((n,), metadata_val, dtype=torch.int32)
    found = lookup(ids, identities, max_probe, size, off, True, opt_in_prob, num_reserved_slots)
    out = found.clone()
    evicted = []
    h = murmur_hash3_2x64(ids)
    block = size - num_reserved_slots if opt_in_prob != -1 else size
    start = unsigned_mod(h, block)
    # pending: the first occurrence of each absent id (duplicates copy its slot at the end)
    uniq, first = _first_occurrences(ids)
    pending = first[found[first] < 0]
    if opt_in_prob != -1 and opt_in_rands is not None:
        opted_out = pending[opt_in_rands[pending] >= opt_in_prob]
        out[opted_out] = off[opted_out] + _fallback(h[opted_out], size[opted_out], block[opted_out], opt_in_prob,
                                                    num_reserved_slots)
        pending = pending[opt_in_rands[pending] < opt_in_prob]
    can_evict = metadata is not None and eviction_threshold > 0
    meta = metadata.view(-1) if metadata is not None else None
    claim = torch.full((table.numel(),), n, dtype=torch.int64, device=ids.device)  # per-slot claimant, n = none
    # per-pending state, compacted as ids find slots (no gathers from the full (N,) arrays per round)
    p_start, p_off, p_block = start[pending], off[pending], block[pending]
    for p in range(max_probe):
        if pending.numel() == 0:
            break
        if pending.numel() <= _NUMPY_TAIL and ids.device.type == "cpu":
            # the long tail of a crowded table: few ids, many rounds; numpy's per-op cost is far below torch's
            pending = _tail_rounds_numpy(ids, table, meta, meta_in, pending, p_start, p_off, p_block, p, max_probe,
                                         eviction_threshold if (can_evict and eviction_policy == 0) else None, out,
                                         evicted)
            break
        slot = p_off + torch.remainder(p_start + p, p_block)
        free = table[slot] == -1
        if can_evict and eviction_policy == 0:
            assert meta is not None
            free = free | (meta[slot] < eviction_threshold)
        fi = free.nonzero().squeeze(1)
        cand, cslot = pending[fi], slot[fi]
        # one winner per slot: the id that occurs first in the batch (scatter-min, no sort)
        claim.scatter_reduce_(0, cslot, cand, reduce="amin")
        won = fi[claim[cslot] == cand]
        claim[cslot] = n
        winners, wslot = pending[won], slot[won]
        prev = table[wslot]
        table[wslot] = ids[winners]
        if meta is not None:
            meta[wslot] = meta_in[winners].to(meta.dtype)
        out[winners] = wslot
        evicted.append(wslot[prev != -1])
        keep = torch.ones_like(pending, dtype=torch.bool)
        keep[won] = False
        pending, p_start, p_off, p_block = pending[keep], p_start[keep], p_off[keep], p_block[keep]
    if pending.numel() > 0 and can_evict and eviction_policy == 1:
        assert meta is not None
        pending = _evict_most_expired(ids, pending, start, block, off, max_probe, table, meta, meta_in,
                                      eviction_threshold, out, evicted)
    if pending.numel() > 0:
        if disable_fallback:
            out[pending] = -1
        else:
            out[pending] = off[pending] + _fallback(h[pending], size[pending], block[pending], opt_in_prob,
                                                    num_reserved_slots)
    # refresh metadata of hits, copy slots to repeated ids
    out = out[_first_index_of(ids, uniq, first)]
    if meta is not None:  # refresh the slots the ids own (not the ones they merely collide on)
        safe = out.clamp(min=0)
        own = (out >= 0) & (table[safe] == ids)
        meta[out[own]] = meta_in[own].to(meta.dtype)
    ev = torch.cat(evicted) if evicted else torch.empty((0,), dtype=torch.int64)
    return out, ev


def _tail_rounds_numpy(
    ids: torch.Tensor,
    table: torch.Tensor,
    meta: Optional[torch.Tensor],
    meta_in: torch.Tensor,
    pending: torch.Tensor,
    p_start: torch.Tensor,
    p_off: torch.Tensor,
    p_block: torch.Tensor,
    first_round: int,
    max_probe: int,
    ttl_threshold: Optional[int],
    out: torch.Tensor,
    evicted: List[torch.Tensor],
) -> torch.Tensor:
    """Probe rounds ``first_round..max_probe-1`` of ``insert`` on numpy views of the same CPU memory."""
    order = torch.argsort(pending)  # ascending first occurrence: the first of a slot's claimants wins
    pend, start, off, block = (t[order].numpy() for t in (pending, p_start, p_off, p_block))
    table_np, ids_np, out_np = table.numpy(), ids.numpy(), out.numpy()
    meta_np = meta.numpy() if meta is not None else None
    meta_in_np = meta_in.numpy()
    for p in range(first_round, max_probe):
        if pend.size == 0:
            break
        slot = off + np.remainder(start + p, block)
        free = table_np[slot] == -1
        if ttl_threshold is not None and meta_np is not None:
            free |= meta_np[slot] < ttl_threshold
        fi = np.flatnonzero(free)
        _, first = np.unique(slot[fi], return_index=True)
        won = fi[first]
        winners, wslot = pend[won], slot[won]
        prev = table_np[wslot]
        table_np[wslot] = ids_np[winners]
        if meta_np is not None:
            meta_np[wslot] = meta_in_np[winners]
        out_np[winners] = wslot
        evicted.append(torch.from_numpy(wslot[prev != -1].copy()))
        keep = np.ones(pend.size, dtype=bool)
        keep[won] = False
        pend, start, off, block = pend[keep], start[keep], off[keep], block[keep]
    return torch.from_numpy(pend.copy()).to(torch.int64)


def _first_occurrences(ids: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(unique ids ascending, index of each one's first occurrence)``."""
    uniq, inv = torch.unique(ids, return_inverse=True)
    first = torch.full((uniq.numel(),), ids.numel(), dtype=torch.int64).scatter_reduce_(
        0, inv, torch.arange(ids.numel()), reduce="amin"
    )
    return uniq, first


def _first_index_of(ids: torch.Tensor, uniq: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    return first[torch.searchsorted(uniq, ids)]


def _evict_most_expired(
    ids: torch.Tensor,
    pending: torch.Tensor,
    start: torch.Tensor,
    size: torch.Tensor,
    off: torch.Tensor,
    max_probe: int,
    table: torch.Tensor,
    meta: torch.Tensor,
    meta_in: torch.Tensor,
    threshold: int,
    out: torch.Tensor,
    evicted: list,
) -> torch.Tensor:
    # LRU: over the whole window, the slot with the smallest metadata below the threshold; one id per slot
    best_slot = torch.full_like(pending, -1)
    best_meta = torch.full_like(pending, threshold, dtype=torch.int64)
    for p in range(max_probe):
        slot = off[pending] + torch.remainder(start[pending] + p, size[pending])
        m = meta[slot].to(torch.int64)
        better = m < best_meta
        best_slot = torch.where(better, slot, best_slot)
        best_meta = torch.where(better, m, best_meta)
    has = best_slot >= 0
    cand, cslot = pending[has], best_slot[has]
    uslot, inv = torch.unique(cslot, return_inverse=True)
    winner_pos = torch.full((uslot.numel(),), cand.numel(), dtype=torch.int64).scatter_reduce_(
        0, inv, torch.arange(cand.numel()), reduce="amin"
    )
    winners = cand[winner_pos]
    table[uslot] = ids[winners]
    meta[uslot] = meta_in[winners].to(meta.dtype)
    out[winners] = uslot
    evicted.append(uslot)
    return pending[out[pending] < 0]
