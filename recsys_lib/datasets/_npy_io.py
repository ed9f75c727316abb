"""Streaming ``.npy`` I/O through iopath: header-only shape reads, row-range reads and chunked writes.

Files written here are byte-identical to ``np.save`` of the whole array (same version-1.0 header, which numpy
pads so the row count can grow in place), but are produced chunk by chunk under a temporary name and only
renamed to their final name once complete: a crash never leaves a file that looks finished.
"""

import os
import uuid
from typing import Any, List, Tuple

import numpy as np
from iopath.common.file_io import PathManager

_FORMAT = np.lib.format


def _read_header(f: Any, path: str) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of an open ``.npy`` stream positioned at 0."""
    try:
        version = _FORMAT.read_magic(f)
        if version == (1, 0):
            shape, fortran_order, dtype = _FORMAT.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran_order, dtype = _FORMAT.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except ValueError as e:
        raise ValueError(f"{path}: not a readable .npy file ({e})") from e
    if fortran_order:
        raise ValueError(f"{path}: Fortran-ordered .npy files are not supported (expected C order)")
    if dtype.hasobject:
        raise ValueError(f"{path}: object arrays are not supported")
    return tuple(int(d) for d in shape), dtype, f.tell()


def npy_header(path: str, pm: PathManager) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of the ``.npy`` file at ``path``, reading only its header."""
    with pm.open(path, "rb") as f:
        return _read_header(f, path)


def _row_items(shape: Tuple[int, ...]) -> int:
    n = 1
    for d in shape[1:]:
        n *= d
    return n


def check_complete(path: str, pm: PathManager) -> Tuple[int, ...]:
    """Shape of ``path``, after checking that the file holds all the bytes its header promises."""
    with pm.open(path, "rb") as f:
        shape, dtype, offset = _read_header(f, path)
        f.seek(0, os.SEEK_END)
        actual = f.tell()
    expected = offset + (shape[0] * _row_items(shape) if shape else 1) * dtype.itemsize
    if actual < expected:
        raise ValueError(
            f"{path}: truncated .npy file: header promises shape {shape} {dtype} ({expected} bytes), "
            f"file has {actual} bytes"
        )
    return shape


def load_rows(path: str, start_row: int, num_rows: int, pm: PathManager, mmap_mode: bool = False) -> np.ndarray:
    """Rows ``[start_row, start_row + num_rows)`` of a C-ordered ``.npy`` file, reading only those bytes."""
    if start_row < 0 or num_rows < 0:
        raise ValueError(f"{path}: start_row={start_row} and num_rows={num_rows} must be >= 0")
    if mmap_mode:
        shape = check_complete(path, pm)
        if start_row + num_rows > shape[0]:
            raise ValueError(f"{path}: rows [{start_row}, {start_row + num_rows}) out of range for shape {shape}")
        arr = np.load(pm.get_local_path(path), mmap_mode="r")
        return arr[start_row : start_row + num_rows]
    with pm.open(path, "rb") as f:
        shape, dtype, offset = _read_header(f, path)
        if len(shape) == 0:
            raise ValueError(f"{path}: expected an array with a row dimension, got a scalar")
        if start_row + num_rows > shape[0]:
            raise ValueError(f"{path}: rows [{start_row}, {start_row + num_rows}) out of range for shape {shape}")
        row_bytes = _row_items(shape) * dtype.itemsize
        out = np.empty((num_rows,) + shape[1:], dtype=dtype)
        if out.size == 0:
            return out
        f.seek(offset + start_row * row_bytes)
        want = num_rows * row_bytes
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        while got < want:
            n = f.readinto(view[got:])
            if not n:
                raise ValueError(
                    f"{path}: truncated .npy file: row {start_row + got // row_bytes} of shape {shape} is missing "
                    f"(expected {offset + shape[0] * row_bytes} bytes)"
                )
            got += n
        return out


def read_ranges(path: str, ranges: List[Tuple[int, int]], pm: PathManager) -> np.ndarray:
    """Rows of the half-open ``ranges`` of a ``.npy`` file, concatenated in the given order (one open)."""
    total = sum(b - a for a, b in ranges)
    with pm.open(path, "rb") as f:
        shape, dtype, offset = _read_header(f, path)
        row_bytes = _row_items(shape) * dtype.itemsize
        out = np.empty((total,) + shape[1:], dtype=dtype)
        flat = out.reshape(-1).view(np.uint8)
        pos = 0
        for a, b in ranges:
            if not 0 <= a <= b <= shape[0]:
                raise ValueError(f"{path}: rows [{a}, {b}) out of range for shape {shape}")
            want = (b - a) * row_bytes
            f.seek(offset + a * row_bytes)
            got = 0
            while got < want:
                n = f.readinto(memoryview(flat[pos + got : pos + want]))
                if not n:
                    raise ValueError(f"{path}: truncated .npy file: row {a + got // row_bytes} of shape {shape} is missing")
                got += n
            pos += want
        return out


def tmp_name(path: str) -> str:
    """A sibling name for work in progress; never matches the final name or a ``*.npy`` glob."""
    return f"{path}.partial-{uuid.uuid4().hex[:8]}"


def commit(tmp: str, path: str, pm: PathManager) -> None:
    """Atomically moves a finished temporary file to its final name (replacing an older file)."""
    if pm.exists(path):
        pm.rm(path)
    pm.mv(tmp, path)


class NpyWriter:
    """Writes a C-ordered ``.npy`` of rows shaped ``row_shape`` chunk by chunk.

    Example::

        with NpyWriter("out.npy", np.float32, (13,), pm) as w:
            for chunk in chunks:          # each (n_i, 13)
                w.write(chunk)
        # out.npy == np.save of np.concatenate(chunks), published only on a clean exit
    """

    def __init__(self, path: str, dtype: Any, row_shape: Tuple[int, ...], pm: PathManager) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.pm = pm
        self.rows = 0
        self._tmp = tmp_name(path)
        self._f = pm.open(self._tmp, "wb")
        self._header_len = self._write_header(0)

    def _write_header(self, rows: int) -> int:
        start = self._f.tell()
        header = {"descr": _FORMAT.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (rows,) + self.row_shape}
        _FORMAT.write_array_header_1_0(self._f, header)
        return self._f.tell() - start

    def write(self, chunk: np.ndarray) -> None:
        if chunk.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: chunk rows have shape {chunk.shape[1:]}, expected {self.row_shape}")
        self._f.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.rows += chunk.shape[0]

    def close(self) -> None:
        """Patches the row count into the header and publishes the file under its final name."""
        self._f.seek(0)
        if self._write_header(self.rows) != self._header_len:  # numpy pads for 21 digits; cannot happen
            raise RuntimeError(f"{self.path}: .npy header changed size")
        self._f.close()
        commit(self._tmp, self.path, self.pm)

    def abort(self) -> None:
        self._f.close()
        if self.pm.exists(self._tmp):
            self.pm.rm(self._tmp)

    def __enter__(self) -> "NpyWriter":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
