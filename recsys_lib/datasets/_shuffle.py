"""Shuffles the Criteo training days (all days but the last) with bounded memory.

External shuffle in two streamed passes:

1. Split every output day into *buckets* of at most ``bucket_rows`` rows. Read the input days chunk by chunk and
   send each row to a bucket at random, drawing how many rows of the chunk each bucket receives from a
   multivariate hypergeometric over the buckets' remaining capacities. Rows are appended to per-bucket
   scratch files.
2. For each output day, read its buckets one at a time, permute the rows of the bucket uniformly, append.

A uniformly random exact-capacity assignment followed by a uniform shuffle inside each bucket is a uniformly
random permutation of all training rows, so output day ``d`` holds ``rows_per_day[d]`` rows drawn from all days.
Peak memory is one chunk plus one bucket. The last day (validation/test) is copied unchanged.
"""

import os
from typing import Dict, List, Optional, Tuple

import numpy as np
from iopath.common.file_io import PathManager
from tqdm import tqdm

from recsys_lib.datasets._npy_io import NpyWriter, check_complete, load_rows, npy_header, tmp_name

DEFAULT_CHUNK_ROWS = 1 << 18
DEFAULT_BUCKET_ROWS = 1 << 22
_PARTS = ("labels", "dense", "sparse")


def _input_paths(in_dense_dir: str, in_sparse_dir: str, day: int, pm: PathManager) -> Dict[str, str]:
    # TorchRec reads day_<d>_sparse.npy; the contiguous step's own output name is accepted as a fallback.
    sparse = os.path.join(in_sparse_dir, f"day_{day}_sparse.npy")
    if not pm.exists(sparse):
        contig = os.path.join(in_sparse_dir, f"day_{day}_sparse_contig_freq.npy")
        if not pm.exists(contig):
            raise ValueError(f"shuffle: neither {sparse} nor {contig} exists")
        sparse = contig
    return {
        "labels": os.path.join(in_dense_dir, f"day_{day}_labels.npy"),
        "dense": os.path.join(in_dense_dir, f"day_{day}_dense.npy"),
        "sparse": sparse,
    }


def _output_paths(out_dir: str, day: int) -> Dict[str, str]:
    return {p: os.path.join(out_dir, f"day_{day}_{p}.npy") for p in _PARTS}


def _row_layouts(inputs: List[Dict[str, str]], rows_per_day: Dict[int, int], pm: PathManager) -> Dict[str, Tuple[np.dtype, Tuple[int, ...]]]:
    """dtype and row shape per part, checked to agree across days and with ``rows_per_day``."""
    layouts: Dict[str, Tuple[np.dtype, Tuple[int, ...]]] = {}
    for day, paths in enumerate(inputs):
        for part, path in paths.items():
            shape = check_complete(path, pm)
            _, dtype, _ = npy_header(path, pm)
            if shape[0] != rows_per_day[day]:
                raise ValueError(f"{path}: has {shape[0]} rows, rows_per_day[{day}] = {rows_per_day[day]}")
            layout = (dtype, shape[1:])
            if layouts.setdefault(part, layout) != layout:
                raise ValueError(f"{path}: dtype/row shape {layout} differs from day 0's {layouts[part]}")
    return layouts


def _copy_file(src: str, dst: str, pm: PathManager, chunk_rows: int) -> None:
    shape = check_complete(src, pm)
    _, dtype, _ = npy_header(src, pm)
    with NpyWriter(dst, dtype, shape[1:], pm) as w:
        for start in range(0, shape[0], chunk_rows):
            w.write(load_rows(src, start, min(chunk_rows, shape[0] - start), pm))


def _write_full_set(in_dense_dir: str, in_sparse_dir: str, out_dir: str, days: int, pm: PathManager, chunk_rows: int) -> None:
    """All days concatenated in order, unshuffled: ``full_{labels,dense,sparse}.npy`` in ``out_dir``."""
    outputs = {p: os.path.join(out_dir, f"full_{p}.npy") for p in _PARTS}
    if all(pm.exists(p) for p in outputs.values()):
        return
    pm.mkdirs(out_dir)
    inputs = [_input_paths(in_dense_dir, in_sparse_dir, d, pm) for d in range(days)]
    for p, dst in outputs.items():
        shape = check_complete(inputs[0][p], pm)
        _, dtype, _ = npy_header(inputs[0][p], pm)
        with NpyWriter(dst, dtype, shape[1:], pm) as w:
            for paths in inputs:
                n = check_complete(paths[p], pm)[0]
                for start in range(0, n, chunk_rows):
                    w.write(load_rows(paths[p], start, min(chunk_rows, n - start), pm))


def shuffle_days(
    input_dir_labels_and_dense: str,
    input_dir_sparse: str,
    output_dir_shuffled: str,
    rows_per_day: Dict[int, int],
    output_dir_full_set: Optional[str],
    days: int,
    int_columns: int,
    sparse_columns: int,
    pm: PathManager,
    random_seed: int,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    progress: bool = True,
) -> None:
    if days < 2:
        raise ValueError(f"shuffle needs at least 2 days (train days + the last day), got days={days}")
    if chunk_rows <= 0 or bucket_rows <= 0:
        raise ValueError(f"chunk_rows and bucket_rows must be positive, got {chunk_rows}, {bucket_rows}")
    missing = [d for d in range(days) if d not in rows_per_day]
    if missing:
        raise ValueError(f"rows_per_day has no entry for days {missing}")
    pm.mkdirs(output_dir_shuffled)
    last = days - 1
    last_in = _input_paths(input_dir_labels_and_dense, input_dir_sparse, last, pm)
    for part, dst in _output_paths(output_dir_shuffled, last).items():
        if not pm.exists(dst):
            _copy_file(last_in[part], dst, pm, chunk_rows)

    if output_dir_full_set:
        _write_full_set(input_dir_labels_and_dense, input_dir_sparse, output_dir_full_set, days, pm, chunk_rows)

    train_days = list(range(last))
    outputs = [_output_paths(output_dir_shuffled, d) for d in train_days]
    if all(pm.exists(p) for o in outputs for p in o.values()):
        return
    inputs = [_input_paths(input_dir_labels_and_dense, input_dir_sparse, d, pm) for d in train_days]
    layouts = _row_layouts(inputs, rows_per_day, pm)
    if layouts["dense"][1] != (int_columns,) or layouts["sparse"][1] != (sparse_columns,):
        raise ValueError(
            f"expected dense rows ({int_columns},) and sparse rows ({sparse_columns},), got "
            f"{layouts['dense'][1]} and {layouts['sparse'][1]}"
        )

    # Buckets: (day, part index) in day order, each at most bucket_rows rows.
    bucket_day: List[int] = []
    capacity: List[int] = []
    for d in train_days:
        for start in range(0, rows_per_day[d], bucket_rows):
            bucket_day.append(d)
            capacity.append(min(bucket_rows, rows_per_day[d] - start))
    scratch_dir = tmp_name(os.path.join(output_dir_shuffled, "shuffle_scratch"))
    pm.mkdirs(scratch_dir)
    scratch = [{p: os.path.join(scratch_dir, f"b{b}_{p}.bin") for p in _PARTS} for b in range(len(capacity))]
    rng = np.random.default_rng(random_seed)
    remaining = np.array(capacity, dtype=np.int64)
    open_writers: List[NpyWriter] = []
    try:
        total = sum(rows_per_day[d] for d in train_days)
        bar = tqdm(total=total, desc="shuffle: scatter", unit="rows", unit_scale=True, disable=not progress)
        for paths in inputs:
            n_rows = check_complete(paths["labels"], pm)[0]
            for start in range(0, n_rows, chunk_rows):
                n = min(chunk_rows, n_rows - start)
                arrays = {p: load_rows(paths[p], start, n, pm) for p in _PARTS}
                counts = rng.multivariate_hypergeometric(remaining, n)
                remaining -= counts
                target = np.repeat(np.arange(len(capacity)), counts)
                rng.shuffle(target)
                order = np.argsort(target, kind="stable")
                bounds = np.concatenate(([0], np.cumsum(counts)))
                for b in np.flatnonzero(counts):
                    rows = order[bounds[b] : bounds[b + 1]]
                    for p in _PARTS:
                        with pm.open(scratch[b][p], "ab") as f:
                            f.write(np.ascontiguousarray(arrays[p][rows]).tobytes())
                bar.update(n)
        bar.close()
        bar = tqdm(total=total, desc="shuffle: gather", unit="rows", unit_scale=True, disable=not progress)
        for d in train_days:
            writers = {p: NpyWriter(outputs[d][p], layouts[p][0], layouts[p][1], pm) for p in _PARTS}
            open_writers.extend(writers.values())
            for b in [b for b, bd in enumerate(bucket_day) if bd == d]:
                perm = rng.permutation(capacity[b])
                for p in _PARTS:
                    dtype, row_shape = layouts[p]
                    with pm.open(scratch[b][p], "rb") as f:
                        arr = np.frombuffer(f.read(), dtype=dtype).reshape((-1,) + row_shape)
                    arr = arr[perm]
                    writers[p].write(arr)
                    pm.rm(scratch[b][p])
                bar.update(capacity[b])
            for w in writers.values():
                w.close()
                open_writers.remove(w)
        bar.close()
    except BaseException:
        for w in open_writers:
            w.abort()
        raise
    finally:
        if pm.exists(scratch_dir):
            for f in pm.ls(scratch_dir):
                pm.rm(os.path.join(scratch_dir, f))
            os.rmdir(pm.get_local_path(scratch_dir))
