"""Vectorised parser for well-formed Criteo TSV chunks (the fast path beside ``parse_tsv_chunk``).

It accepts only the plain grammar real Criteo files use: ``[-]?[0-9]+`` decimal fields, ``[0-9a-fA-F]+`` hex
fields, empty fields, ``\\n`` line ends. On anything else (wrong column count, ``\\r``, signs on hex, long
numbers, stray characters) it returns ``None`` and the caller re-parses the chunk with the pure-Python
reference parser, which either handles it with Python's ``int`` semantics or raises an error naming the line.
On the accepted grammar both parsers produce identical values (tests compare them).
"""

from typing import Optional

import numpy as np

_TAB, _NL, _MINUS = 9, 10, 45
_MAX_DEC_DIGITS = 18  # < 2**63 for any 18-digit number
_MAX_HEX_DIGITS = 15


def _digit_table(base: int) -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int64)
    lut[ord("0") : ord("9") + 1] = np.arange(10)
    if base == 16:
        lut[ord("a") : ord("f") + 1] = np.arange(10, 16)
        lut[ord("A") : ord("F") + 1] = np.arange(10, 16)
    return lut


_DEC = _digit_table(10)
_HEX = _digit_table(16)


def _parse_fields(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray, base: int) -> Optional[np.ndarray]:
    """Integer value of each field ``buf[starts[i] : starts[i] + lens[i]]`` (empty → 0), or None if unusual."""
    lut = _DEC if base == 10 else _HEX
    neg = np.zeros(starts.shape, dtype=bool)
    if base == 10:
        nonempty = lens > 0
        neg[nonempty] = buf[starts[nonempty]] == _MINUS
        starts, lens = starts + neg, lens - neg
        if (neg & (lens == 0)).any():
            return None
    width = int(lens.max()) if lens.size else 0
    if width > (_MAX_DEC_DIGITS if base == 10 else _MAX_HEX_DIGITS):
        return None
    val = np.zeros(starts.shape, dtype=np.int64)
    bad = np.zeros(starts.shape, dtype=bool)
    padded = np.concatenate((buf, np.zeros(width, dtype=np.uint8)))  # reads past a field stay in bounds
    for k in range(width):
        live = lens > k
        digit = lut[padded[starts + k]]
        bad |= (digit < 0) & live
        np.multiply(val, base, out=val, where=live)
        np.add(val, digit, out=val, where=live)
    if bad.any():
        return None
    return np.where(neg, -val, val)


def parse_chunk_fast(data: bytes, ncols: int, first_hex_col: int) -> Optional[np.ndarray]:
    """``(n, ncols)`` int64 values of ``n`` newline-terminated TSV lines; columns ``< first_hex_col`` are
    decimal, the rest hex. Returns ``None`` when the chunk needs the reference parser."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0 or buf[-1] != _NL:
        return None
    seps = np.flatnonzero((buf == _TAB) | (buf == _NL))
    is_nl = buf[seps] == _NL
    n = int(is_nl.sum())
    if seps.size != n * ncols or not (np.flatnonzero(is_nl) % ncols == ncols - 1).all():
        return None  # some line has the wrong number of columns
    if (buf == 13).any():
        return None  # \r\n line ends: let the reference parser strip them
    starts = np.concatenate(([0], seps[:-1] + 1)).reshape(n, ncols)
    lens = seps.reshape(n, ncols) - starts
    out = np.empty((n, ncols), dtype=np.int64)
    for lo, hi, base in ((0, first_hex_col, 10), (first_hex_col, ncols, 16)):
        if lo == hi:
            continue
        vals = _parse_fields(buf, starts[:, lo:hi].ravel(), lens[:, lo:hi].ravel(), base)
        if vals is None:
            return None
        out[:, lo:hi] = vals.reshape(n, hi - lo)
    return out
