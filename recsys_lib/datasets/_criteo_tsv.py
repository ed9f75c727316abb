"""Criteo TSV → ``.npy`` conversion, streamed in chunks of rows (memory independent of the file size).

Numerics (identical to TorchRec's ``tsv_to_npys`` on well-formed files):

* labels: int32, shape (N, 1); an empty label is 0; the Kaggle test file (39 columns, no label) gets the
  fake label -1 (what TorchRec writes);
* dense:  parsed as int32 (empty → 0), then over the whole file ``dense -= dense.min() - 2`` and
  ``np.log(dense, dtype=np.float32)``, so the file minimum maps to log(2); shape (N, 13);
* sparse: hex string → int64 (empty → 0), shape (N, 26).

Unlike TorchRec, a malformed row (wrong column count, non-numeric dense or label field, non-hex id) raises a
``ValueError`` naming the file and line instead of being silently mapped to 0.
"""

import itertools
import os
from typing import Any, Iterator, List, Optional, Tuple

import numpy as np
from iopath.common.file_io import PathManager
from tqdm import tqdm

from recsys_lib.datasets._criteo_constants import CAT_FEATURE_COUNT, INT_FEATURE_COUNT, NUM_COLUMNS
from recsys_lib.datasets._npy_io import NpyWriter, tmp_name
from recsys_lib.datasets._tsv_fast import parse_chunk_fast

DEFAULT_CHUNK_ROWS = 1 << 14
KAGGLE_TEST_LABEL = -1  # the Kaggle test file has no label column


def _locate_bad_field(
    rows: List[List[str]], path: str, first_line: int, col_lo: int, col_hi: int, base: int, what: str
) -> ValueError:
    """Builds the error for the first field in columns [col_lo, col_hi) that does not parse."""
    for r, fields in enumerate(rows):
        for c in range(col_lo, col_hi):
            v = fields[c]
            if not v:
                continue
            try:
                int(v, base)
            except ValueError:
                return ValueError(f"{path}:{first_line + r}: column {c} ({what}) is {v!r}, expected {'a hex id' if base == 16 else 'an integer'}")
    return ValueError(f"{path}:{first_line}-{first_line + len(rows) - 1}: {what} value out of range")


def parse_tsv_chunk(
    lines: List[str], path: str, first_line: int, has_label: bool = True
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parses Criteo TSV lines into ``(dense int32 (n,13), sparse int64 (n,26), labels int32 (n,1))``.

    ``first_line`` is the 1-based line number of ``lines[0]`` in ``path`` (for error messages).
    """
    ncols = NUM_COLUMNS if has_label else NUM_COLUMNS - 1
    rows = [line.rstrip("\r\n").split("\t") for line in lines]
    n = len(rows)
    for r, fields in enumerate(rows):
        if len(fields) != ncols:
            raise ValueError(f"{path}:{first_line + r}: expected {ncols} tab-separated columns, got {len(fields)}")
    lab = 1 if has_label else 0
    d_lo, d_hi = lab, lab + INT_FEATURE_COUNT
    s_hi = d_hi + CAT_FEATURE_COUNT
    try:
        dense = np.fromiter(
            (int(v) if v else 0 for fields in rows for v in fields[d_lo:d_hi]), dtype=np.int32, count=n * INT_FEATURE_COUNT
        ).reshape(n, INT_FEATURE_COUNT)
    except (ValueError, OverflowError):
        raise _locate_bad_field(rows, path, first_line, d_lo, d_hi, 10, "dense") from None
    try:
        sparse = np.fromiter(
            (int(v, 16) if v else 0 for fields in rows for v in fields[d_hi:s_hi]), dtype=np.int64, count=n * CAT_FEATURE_COUNT
        ).reshape(n, CAT_FEATURE_COUNT)
    except (ValueError, OverflowError):
        raise _locate_bad_field(rows, path, first_line, d_hi, s_hi, 16, "sparse") from None
    if has_label:
        try:
            labels = np.fromiter((int(f[0]) if f[0] else 0 for f in rows), dtype=np.int32, count=n).reshape(n, 1)
        except (ValueError, OverflowError):
            raise _locate_bad_field(rows, path, first_line, 0, 1, 10, "label") from None
    else:
        labels = np.full((n, 1), KAGGLE_TEST_LABEL, dtype=np.int32)
    return dense, sparse, labels


_INT32 = np.iinfo(np.int32)


def parse_tsv_bytes(
    lines: List[bytes], path: str, first_line: int, has_label: bool = True
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Same result as ``parse_tsv_chunk`` on the decoded lines; uses the vectorised parser when the chunk is
    plain (the normal case) and the reference parser otherwise (odd-but-valid syntax, or errors)."""
    data = b"".join(lines)
    if not data.endswith(b"\n"):
        data += b"\n"  # last line of a file without a final newline
    lab = 1 if has_label else 0
    vals = parse_chunk_fast(data, NUM_COLUMNS - 1 + lab, lab + INT_FEATURE_COUNT)
    if vals is not None:
        dense = vals[:, lab : lab + INT_FEATURE_COUNT]
        head = vals[:, : lab + INT_FEATURE_COUNT]
        if head.size == 0 or (head.min() >= _INT32.min and head.max() <= _INT32.max):
            labels = vals[:, :1].astype(np.int32) if has_label else np.full((len(vals), 1), KAGGLE_TEST_LABEL, dtype=np.int32)
            return dense.astype(np.int32), np.ascontiguousarray(vals[:, lab + INT_FEATURE_COUNT :]), labels
    text = []
    for i, line in enumerate(lines):
        try:
            text.append(line.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{path}:{first_line + i}: not valid UTF-8 ({e})") from None
    return parse_tsv_chunk(text, path, first_line, has_label)


def iter_line_chunks(stream: Any, chunk_rows: int) -> Iterator[Tuple[int, List[str]]]:
    """Yields ``(1-based line number of the first line, lines)`` in chunks of at most ``chunk_rows`` lines."""
    line_no = 1
    while True:
        lines = list(itertools.islice(stream, chunk_rows))
        if not lines:
            return
        yield line_no, lines
        line_no += len(lines)


def _is_kaggle_test(in_file: str, dataset_name: str) -> bool:
    return dataset_name == "criteo_kaggle" and "test" in os.path.basename(in_file)


def tsv_to_npys(
    in_file: str,
    out_dense_file: str,
    out_sparse_file: str,
    out_labels_file: str,
    dataset_name: str,
    pm: PathManager,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> int:
    """Converts one Criteo TSV file into three ``.npy`` files; returns the number of rows.

    Two streamed passes: (1) parse chunks, writing labels and sparse ids to their outputs and raw int32 dense
    values to a scratch file while tracking the minimum; (2) read the scratch file back in chunks, shift by the
    file minimum and take the log. Peak memory is a few chunks.
    """
    if dataset_name not in ("criteo_1tb", "criteo_kaggle"):
        raise ValueError(f"dataset_name must be 'criteo_1tb' or 'criteo_kaggle', got {dataset_name!r}")
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    has_label = not _is_kaggle_test(in_file, dataset_name)
    scratch = tmp_name(out_dense_file) + ".int32"
    writers: List[NpyWriter] = []
    try:
        labels_w = NpyWriter(out_labels_file, np.int32, (1,), pm)
        writers.append(labels_w)
        sparse_w = NpyWriter(out_sparse_file, np.int64, (CAT_FEATURE_COUNT,), pm)
        writers.append(sparse_w)
        dense_min: Optional[int] = None
        rows = 0
        bar = tqdm(desc=f"parse {os.path.basename(in_file)}", unit="rows", unit_scale=True, disable=not progress)
        with pm.open(in_file, "rb") as src, pm.open(scratch, "wb") as raw:
            for first_line, lines in iter_line_chunks(src, chunk_rows):
                dense, sparse, labels = parse_tsv_bytes(lines, in_file, first_line, has_label)
                chunk_min = int(dense.min())
                dense_min = chunk_min if dense_min is None else min(dense_min, chunk_min)
                raw.write(dense.tobytes())
                sparse_w.write(sparse)
                labels_w.write(labels)
                rows += len(lines)
                bar.update(len(lines))
        bar.close()
        if rows == 0:
            raise ValueError(f"{in_file}: no rows to convert (empty file)")
        # Same int32 arithmetic as `dense -= dense.min() - 2` on the whole array.
        shift = np.int32(dense_min) - np.int32(2)
        dense_w = NpyWriter(out_dense_file, np.float32, (INT_FEATURE_COUNT,), pm)
        writers.append(dense_w)
        row_bytes = INT_FEATURE_COUNT * 4
        with pm.open(scratch, "rb") as raw:
            while True:
                buf = raw.read(chunk_rows * row_bytes)
                if not buf:
                    break
                dense = np.frombuffer(buf, dtype=np.int32).reshape(-1, INT_FEATURE_COUNT) - shift
                dense_w.write(np.log(dense, dtype=np.float32))
        for w in writers:
            w.close()
        return rows
    except BaseException:
        for w in writers:
            w.abort()
        raise
    finally:
        if pm.exists(scratch):
            pm.rm(scratch)
