"""A cached membership filter for read-only hash-ZCH lookups on CPU.

FBGEMM's CPU ``zero_collision_hash(readonly=True)`` stops at an id's row when the id is in the table (a few
probes at usual loads) but walks the whole probe window (``max_probe`` slots, 128 by default) for an id that is
absent, one id at a time: at half unknown ids that walk is nearly all of its time. In eval the identity table
does not change between batches, so we mark it once in a byte map (a one-hash Bloom filter of the stored
identities, >= 32 bytes per stored id: ~3% of absent ids read "maybe", a stored id never reads "no") and split
each batch with one gather:

* ids that may be stored (and the empty marker ``-1``) go to the kernel as they are;
* the others are stored nowhere and match no slot of their window, so the kernel's answer is its fallback row
  (``h mod size``, a reserved row with opt-in, ``-1`` with ``disable_fallback``): the kernel with
  ``max_probe=1`` gives exactly that, one probe each.

Results are identical to the kernel on the whole batch (tests compare them). The filter is rebuilt when the table
differs from the snapshot it was built from (``torch.equal``: a memcmp of ``Z`` int64, ~1 ms per million rows),
so writes through any path (training inserts, ``load_state_dict``, ``.data`` edits) are seen.
"""

from typing import Optional

import torch

from recsys_lib.modules import _zch_probe

_EMPTY = -1
_MUL = -7046029254386353131  # 0x9E3779B97F4A7C15 as int64: Fibonacci hashing
_MIN_ROWS = 4096  # below this the kernel is as fast as building anything


def _dir_pos(keys: torch.Tensor, bits: int) -> torch.Tensor:
    # top `bits` bits of key * golden ratio (logical shift of the int64 product)
    return ((keys * _MUL) >> (64 - bits)) & ((1 << bits) - 1)


class ReadonlyZchDirectory:
    """A one-hash Bloom filter of one table's identities, rebuilt when the table changes; splits lookups.

    Not a module and not state: a cache the module owns, never saved.
    """

    def __init__(self) -> None:
        self._snapshot: Optional[torch.Tensor] = None
        self._marks: Optional[torch.Tensor] = None  # (2**bits,) bool: some identity hashes here
        self._bits = 0

    def _fresh(self, table: torch.Tensor) -> bool:
        snap = self._snapshot
        return snap is not None and snap.shape == table.shape and torch.equal(snap, table)

    def _build(self, table: torch.Tensor) -> None:
        self._snapshot = table.clone()
        keys = table[table != _EMPTY]
        bits = max(12, (max(keys.numel(), 1) * 32 - 1).bit_length())  # >= 32 bytes per key: ~3% false hits
        marks = torch.zeros((1 << bits,), dtype=torch.bool)
        marks[_dir_pos(keys, bits)] = True
        self._marks, self._bits = marks, bits

    def _maybe_stored(self, ids: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: False only for ids stored nowhere in the table (a few absent ids read True)."""
        assert self._marks is not None
        return self._marks.index_select(0, _dir_pos(ids, self._bits))

    def lookup(
        self,
        ids: torch.Tensor,
        identities: torch.Tensor,
        max_probe: int,
        local_sizes: Optional[torch.Tensor] = None,
        offsets: Optional[torch.Tensor] = None,
        disable_fallback: bool = False,
        opt_in_prob: int = -1,
        num_reserved_slots: int = -1,
    ) -> torch.Tensor:
        """Same contract and result as ``_zch_probe.lookup`` (read-only), ``(N,)`` int64 rows."""
        table = identities.detach().view(-1)
        usable = (ids.device.type == "cpu" and table.dtype == torch.int64 and ids.dtype == torch.int64
                  and table.numel() >= _MIN_ROWS and ids.numel() >= 1 and max_probe > 1)
        if not usable:
            return _zch_probe.lookup(ids, identities, max_probe, local_sizes, offsets, disable_fallback,
                                     opt_in_prob, num_reserved_slots)
        if not self._fresh(table):
            self._build(table)
        stored = self._maybe_stored(ids).logical_or_(ids == _EMPTY)
        walk = stored.nonzero().squeeze(1)
        absent = (~stored).nonzero().squeeze(1)
        out = torch.empty_like(ids)

        def part(idx: torch.Tensor, probes: int) -> torch.Tensor:
            sizes = local_sizes.index_select(0, idx) if local_sizes is not None else None
            offs = offsets.index_select(0, idx) if offsets is not None else None
            return _zch_probe.lookup(ids.index_select(0, idx), identities, probes, sizes, offs, disable_fallback,
                                     opt_in_prob, num_reserved_slots)

        out[walk] = part(walk, max_probe)
        if disable_fallback:
            out[absent] = -1
        else:
            out[absent] = part(absent, 1)  # one probe, no match possible: the kernel's fallback row
        return out
