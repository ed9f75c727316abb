"""Remaps raw Criteo categorical ids to contiguous ids per feature, with a frequency threshold.

Semantics, per column, counting over *all* input files together (what TorchRec 1.8.0 writes, checked
black-box on the same inputs):

* raw ids seen at least ``frequency_threshold`` times get ``2, 3, ..., K + 1`` in order of first appearance
  (files in the given order, rows in file order);
* all rarer ids share id ``1`` (with ``frequency_threshold <= 1`` every id is kept); id ``0`` is never written.

Example, one column over two files, threshold 2::

    raw:  [50, 10, 50, 70] + [10, 90]   →   [2, 3, 2, 1] + [3, 1]

So the map restricted to the kept ids is a bijection onto a contiguous range. Memory: pass 1 streams row
chunks and keeps one sorted (id, count, first row) table per column (size of the vocabulary, not of the
files); pass 2 streams each file again and maps chunk by chunk with a binary search. Each output file is written under a
temporary name and renamed when complete; outputs that already exist are skipped (a rerun resumes).
"""

import os
from typing import Dict, Iterator, List, Tuple

import numpy as np
from iopath.common.file_io import PathManager
from tqdm import tqdm

from recsys_lib.datasets._npy_io import NpyWriter, check_complete, load_rows, npy_header

DEFAULT_CHUNK_ROWS = 1 << 18


_Table = Tuple[np.ndarray, np.ndarray, np.ndarray]  # (sorted distinct ids, counts, first global row)
RARE_ID = 1
FIRST_ID = 2


def merge_counts(values: np.ndarray, counts: np.ndarray, first: np.ndarray) -> _Table:
    """Merges equal ``values``: returns (sorted distinct values, summed counts, earliest first row)."""
    if values.size == 0:
        return values, counts, first
    order = np.argsort(values, kind="stable")
    v, c, f = values[order], counts[order], first[order]
    starts = np.flatnonzero(np.concatenate(([True], v[1:] != v[:-1])))
    return v[starts], np.add.reduceat(c, starts), np.minimum.reduceat(f, starts)


def contiguous_output_path(in_file: str, output_dir: str, output_file_suffix: str) -> str:
    """``<output_dir>/<name without .npy><suffix>``, e.g. ``day_0_sparse.npy`` → ``day_0_sparse_contig_freq.npy``."""
    name = os.path.basename(in_file)
    if name.endswith(".npy"):
        name = name[: -len(".npy")]
    return os.path.join(output_dir, name + output_file_suffix)


def _iter_chunks(path: str, rows: int, chunk_rows: int, pm: PathManager) -> Iterator[np.ndarray]:
    for start in range(0, rows, chunk_rows):
        yield load_rows(path, start, min(chunk_rows, rows - start), pm)


def count_ids(in_files: List[str], columns: int, pm: PathManager, chunk_rows: int, progress: bool) -> List[_Table]:
    """Per column, (sorted distinct ids, counts, first global row) over all files, built from streamed chunks."""
    shapes = [check_complete(f, pm) for f in in_files]
    for f, shape in zip(in_files, shapes):
        if len(shape) != 2 or shape[1] != columns:
            raise ValueError(f"{f}: expected sparse ids of shape (N, {columns}), got {shape}")
    empty = np.empty((0,), dtype=np.int64)
    tables: List[_Table] = [(empty, empty, empty) for _ in range(columns)]
    # Per-chunk uniques wait in `pending` and are merged once they outgrow the table (amortised doubling),
    # so each id is re-sorted O(log N) times in total rather than once per chunk.
    pending: List[List[_Table]] = [[] for _ in range(columns)]
    pending_size = [0] * columns

    def _flush(c: int) -> None:
        parts = [tables[c]] + pending[c]
        tables[c] = merge_counts(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
        pending[c], pending_size[c] = [], 0

    bar = tqdm(total=sum(s[0] for s in shapes), desc="count ids", unit="rows", unit_scale=True, disable=not progress)
    row0 = 0
    for f, shape in zip(in_files, shapes):
        for chunk in _iter_chunks(f, shape[0], chunk_rows, pm):
            for c in range(columns):
                u, idx, n = np.unique(chunk[:, c], return_index=True, return_counts=True)
                pending[c].append((u.astype(np.int64), n.astype(np.int64), idx.astype(np.int64) + row0))
                pending_size[c] += u.size
                if pending_size[c] >= max(tables[c][0].size, chunk_rows):
                    _flush(c)
            row0 += chunk.shape[0]
            bar.update(chunk.shape[0])
    for c in range(columns):
        _flush(c)
    bar.close()
    return tables


def build_vocabs(tables: List[_Table], frequency_threshold: int) -> List[Tuple[np.ndarray, np.ndarray]]:
    """Per column, (sorted kept raw ids, their new ids): kept ids numbered from 2 by first appearance."""
    vocabs = []
    for values, counts, first in tables:
        keep = counts >= frequency_threshold
        kept_first = first[keep]
        new_ids = np.empty(kept_first.shape, dtype=np.int64)
        new_ids[np.argsort(kept_first, kind="stable")] = np.arange(FIRST_ID, FIRST_ID + kept_first.size)
        vocabs.append((values[keep], new_ids))
    return vocabs


def remap_chunk(chunk: np.ndarray, vocabs: List[Tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Maps raw ids (n, C) to contiguous ids with the rules in the module docstring."""
    out = np.empty_like(chunk)
    for c, (vocab, new_ids) in enumerate(vocabs):
        col = chunk[:, c]
        if vocab.size == 0:
            out[:, c] = RARE_ID
            continue
        pos = np.minimum(np.searchsorted(vocab, col), vocab.size - 1)
        out[:, c] = np.where(vocab[pos] == col, new_ids[pos], RARE_ID)
    return out


def sparse_to_contiguous(
    in_files: List[str],
    output_dir: str,
    frequency_threshold: int,
    columns: int,
    pm: PathManager,
    output_file_suffix: str,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> Dict[str, str]:
    """Writes one remapped file per input; returns {input path: output path}."""
    if not in_files:
        raise ValueError("sparse_to_contiguous: in_files is empty")
    if chunk_rows <= 0:
        raise ValueError(f"chunk_rows must be positive, got {chunk_rows}")
    outputs = {f: contiguous_output_path(f, output_dir, output_file_suffix) for f in in_files}
    if len(set(outputs.values())) != len(outputs):
        raise ValueError(f"input files share a base name; outputs would collide: {sorted(outputs.values())}")
    todo = [f for f in in_files if not pm.exists(outputs[f])]
    if not todo:
        return outputs
    pm.mkdirs(output_dir)
    vocabs = build_vocabs(count_ids(in_files, columns, pm, chunk_rows, progress), frequency_threshold)
    for f in todo:
        shape, dtype, _ = npy_header(f, pm)
        bar = tqdm(total=shape[0], desc=f"remap {os.path.basename(f)}", unit="rows", unit_scale=True, disable=not progress)
        with NpyWriter(outputs[f], dtype, (columns,), pm) as w:
            for chunk in _iter_chunks(f, shape[0], chunk_rows, pm):
                w.write(remap_chunk(chunk, vocabs))
                bar.update(chunk.shape[0])
        bar.close()
    return outputs
