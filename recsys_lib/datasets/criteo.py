"""Criteo Display Advertising (Kaggle) and 1TB Click Logs: TSV readers, binary preprocessing, in-memory loader.

Pipeline for the DLRM example (each step streams with bounded memory and skips outputs already written)::

    day_0 .. day_23 (TSV, 40 columns)
      └─ BinaryCriteoUtils.tsv_to_npys          → day_i_dense.npy (N,13) f32, day_i_sparse.npy (N,26) i64,
                                                  day_i_labels.npy (N,1) i32
      └─ BinaryCriteoUtils.sparse_to_contiguous → day_i_sparse_contig_freq.npy (ids 0..K per feature)
      └─ BinaryCriteoUtils.shuffle              → shuffled training days
      └─ InMemoryBinaryCriteoIterDataPipe       → Batch(dense (B,13), KJT cat_0..cat_25, labels (B,))
"""

import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import numpy as np
from torch.utils.data import IterDataPipe

from recsys_lib.datasets import _contiguous, _criteo_tsv, _npy_io, _row_ranges, _shuffle
from recsys_lib.datasets._criteo_constants import (  # noqa: F401  (re-exported)
    CAT_FEATURE_COUNT,
    DAYS,
    DEFAULT_CAT_NAMES,
    DEFAULT_COLUMN_NAMES,
    DEFAULT_INT_NAMES,
    DEFAULT_LABEL_NAME,
    FREQUENCY_THRESHOLD,
    INT_FEATURE_COUNT,
    TOTAL_TRAINING_SAMPLES,
)
from recsys_lib.datasets._criteo_iter import InMemoryBinaryCriteoIterDataPipe  # noqa: F401
from recsys_lib.datasets.utils import PATH_MANAGER_KEY, LoadFiles, ReadLinesFromCSV, get_path_manager, safe_cast


def _cast_int(val: str) -> int:
    return safe_cast(val, int, 0)


def _cast_str(val: str) -> str:
    return safe_cast(val, str, "")


# One caster per column of DEFAULT_COLUMN_NAMES: label and ints → int (missing: 0), categoricals stay hex str.
COLUMN_TYPE_CASTERS: List[Callable[[str], Union[int, str]]] = [
    _cast_int,
    *(_cast_int for _ in range(INT_FEATURE_COUNT)),
    *(_cast_str for _ in range(CAT_FEATURE_COUNT)),
]


def _default_row_mapper(example: List[str]) -> Dict[str, Union[int, str]]:
    """Row → ``{column name: cast value}``; columns are matched from the right, so a Kaggle test row
    (no label) maps to the 39 feature columns without ``"label"``."""
    if len(example) > len(DEFAULT_COLUMN_NAMES):
        raise ValueError(f"Criteo row has {len(example)} columns, at most {len(DEFAULT_COLUMN_NAMES)} expected")
    offset = len(DEFAULT_COLUMN_NAMES) - len(example)
    return {DEFAULT_COLUMN_NAMES[offset + i]: COLUMN_TYPE_CASTERS[offset + i](v) for i, v in enumerate(example)}


class CriteoIterDataPipe(IterDataPipe):
    """Iterates the rows of Criteo TSV files, mapped by ``row_mapper`` (``None``: raw ``List[str]``).

    Args:
        paths: TSV files (any iopath path).
        row_mapper: applied to each row's ``List[str]``.
        **open_kw: forwarded to the file open (e.g. ``path_manager_key``, ``encoding``).
    """

    def __init__(
        self,
        paths: Iterable[str],
        *,
        row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
        **open_kw: Any,
    ) -> None:
        super().__init__()
        self.paths = paths
        self.row_mapper = row_mapper
        self.open_kw = open_kw

    def __iter__(self) -> Iterator[Any]:
        rows = ReadLinesFromCSV(LoadFiles(self.paths, mode="r", **self.open_kw), delimiter="\t")
        if self.row_mapper is None:
            yield from rows
        else:
            for row in rows:
                yield self.row_mapper(row)


def criteo_terabyte(
    paths: Iterable[str],
    *,
    row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
    **open_kw: Any,
) -> IterDataPipe:
    """Rows of the Criteo 1TB Click Logs day files (``day_0`` .. ``day_23``).

    Example::

        datapipe = criteo_terabyte(("/data/day_0", "/data/day_1"))
        next(iter(datapipe))   # {"label": 0, "int_0": 5, ..., "cat_25": "f6a3e43b"}
    """
    return CriteoIterDataPipe(paths, row_mapper=row_mapper, **open_kw)


def criteo_kaggle(
    path: str,
    *,
    row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
    **open_kw: Any,
) -> IterDataPipe:
    """Rows of the Kaggle Display Advertising ``train.txt`` (or ``test.txt``, which has no label)."""
    return CriteoIterDataPipe((path,), row_mapper=row_mapper, **open_kw)


class BinaryCriteoUtils:
    """Static tools to turn Criteo TSV files into ``.npy`` arrays and read them back by row ranges."""

    @staticmethod
    def tsv_to_npys(
        in_file: str,
        out_dense_file: str,
        out_sparse_file: str,
        out_labels_file: str,
        dataset_name: str = "criteo_1tb",
        path_manager_key: str = PATH_MANAGER_KEY,
    ) -> None:
        """TSV → dense ``(N,13)`` float32 (``log(x - min + 2)``), sparse ``(N,26)`` int64, labels ``(N,1)`` int32.

        Outputs appear under their names only once complete; ``tsv_to_npys_chunked`` sets the chunk size and
        progress bar and returns N. See ``recsys_lib.datasets._criteo_tsv`` for the numerics and errors.
        """
        tsv_to_npys_chunked(in_file, out_dense_file, out_sparse_file, out_labels_file, dataset_name, path_manager_key)

    @staticmethod
    def get_shape_from_npy(path: str, path_manager_key: str = PATH_MANAGER_KEY) -> Tuple[int, ...]:
        """Shape of a ``.npy`` file, reading only its header."""
        return _npy_io.npy_header(path, get_path_manager(path_manager_key))[0]

    @staticmethod
    def get_file_row_ranges_and_remainder(
        lengths: List[int],
        rank: int,
        world_size: int,
        start_row: int = 0,
        last_row: Optional[int] = None,
    ) -> Tuple[Dict[int, Tuple[int, int]], int]:
        """``({file index: (first, last) local row, inclusive}, rows % world_size)`` for this rank."""
        return _row_ranges.get_file_row_ranges_and_remainder(lengths, rank, world_size, start_row, last_row)

    @staticmethod
    def load_npy_range(
        fname: str,
        start_row: int,
        num_rows: int,
        path_manager_key: str = PATH_MANAGER_KEY,
        mmap_mode: bool = False,
    ) -> np.ndarray:
        """Rows ``[start_row, start_row + num_rows)`` of a ``.npy`` file; only those bytes are read (or mapped)."""
        return _npy_io.load_rows(fname, start_row, num_rows, get_path_manager(path_manager_key), mmap_mode)

    @staticmethod
    def sparse_to_contiguous(
        in_files: List[str],
        output_dir: str,
        frequency_threshold: int = FREQUENCY_THRESHOLD,
        columns: int = CAT_FEATURE_COUNT,
        path_manager_key: str = PATH_MANAGER_KEY,
        output_file_suffix: str = "_contig_freq.npy",
    ) -> None:
        """Maps each feature's raw ids to contiguous ids (kept ids → 2, 3, ... by first appearance; rare → 1).

        Writes ``<output_dir>/<input name><output_file_suffix>`` per input; see ``_contiguous`` for details and
        ``sparse_to_contiguous_chunked`` for the chunk size and progress bar.
        """
        sparse_to_contiguous_chunked(in_files, output_dir, frequency_threshold, columns, path_manager_key, output_file_suffix)

    @staticmethod
    def shuffle(
        input_dir_labels_and_dense: str,
        input_dir_sparse: str,
        output_dir_shuffled: str,
        rows_per_day: Dict[int, int],
        output_dir_full_set: Optional[str] = None,
        days: int = DAYS,
        int_columns: int = INT_FEATURE_COUNT,
        sparse_columns: int = CAT_FEATURE_COUNT,
        path_manager_key: str = PATH_MANAGER_KEY,
        random_seed: int = 0,
    ) -> None:
        """Shuffles rows across the training days ``0 .. days-2`` (the last day is copied unchanged).

        Reads ``day_i_{labels,dense}.npy`` from ``input_dir_labels_and_dense`` and ``day_i_sparse.npy`` (or, if
        absent, ``day_i_sparse_contig_freq.npy``) from ``input_dir_sparse``; writes ``day_i_{dense,sparse,labels}.npy`` to
        ``output_dir_shuffled`` with ``rows_per_day[i]`` rows each, and, if ``output_dir_full_set`` is given, all
        days concatenated unshuffled as ``full_{dense,sparse,labels}.npy`` there (TorchRec writes one float32
        ``full.npy`` of ``[label | dense | sparse]`` columns instead, which cannot hold ids above 2**24 exactly).
        ``shuffle_chunked`` sets the memory bounds and progress bar.
        """
        shuffle_chunked(
            input_dir_labels_and_dense, input_dir_sparse, output_dir_shuffled, rows_per_day, output_dir_full_set,
            days, int_columns, sparse_columns, path_manager_key, random_seed,
        )


def tsv_to_npys_chunked(
    in_file: str,
    out_dense_file: str,
    out_sparse_file: str,
    out_labels_file: str,
    dataset_name: str = "criteo_1tb",
    path_manager_key: str = PATH_MANAGER_KEY,
    chunk_rows: int = _criteo_tsv.DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> int:
    """``BinaryCriteoUtils.tsv_to_npys`` streaming ``chunk_rows`` rows at a time; returns the row count N."""
    return _criteo_tsv.tsv_to_npys(
        in_file, out_dense_file, out_sparse_file, out_labels_file, dataset_name,
        get_path_manager(path_manager_key), chunk_rows, progress,
    )


def sparse_to_contiguous_chunked(
    in_files: List[str],
    output_dir: str,
    frequency_threshold: int = FREQUENCY_THRESHOLD,
    columns: int = CAT_FEATURE_COUNT,
    path_manager_key: str = PATH_MANAGER_KEY,
    output_file_suffix: str = "_contig_freq.npy",
    chunk_rows: int = _contiguous.DEFAULT_CHUNK_ROWS,
    progress: bool = True,
) -> None:
    """``BinaryCriteoUtils.sparse_to_contiguous`` reading ``chunk_rows`` rows at a time."""
    _contiguous.sparse_to_contiguous(
        in_files, output_dir, frequency_threshold, columns, get_path_manager(path_manager_key),
        output_file_suffix, chunk_rows, progress,
    )


def shuffle_chunked(
    input_dir_labels_and_dense: str,
    input_dir_sparse: str,
    output_dir_shuffled: str,
    rows_per_day: Dict[int, int],
    output_dir_full_set: Optional[str] = None,
    days: int = DAYS,
    int_columns: int = INT_FEATURE_COUNT,
    sparse_columns: int = CAT_FEATURE_COUNT,
    path_manager_key: str = PATH_MANAGER_KEY,
    random_seed: int = 0,
    chunk_rows: int = _shuffle.DEFAULT_CHUNK_ROWS,
    bucket_rows: int = _shuffle.DEFAULT_BUCKET_ROWS,
    progress: bool = True,
) -> None:
    """``BinaryCriteoUtils.shuffle`` with memory bounded by ``chunk_rows`` + ``bucket_rows`` rows."""
    _shuffle.shuffle_days(
        input_dir_labels_and_dense, input_dir_sparse, output_dir_shuffled, rows_per_day, output_dir_full_set,
        days, int_columns, sparse_columns, get_path_manager(path_manager_key), random_seed,
        chunk_rows, bucket_rows, progress,
    )


def npy_output_paths(output_dir: str, name: str) -> Tuple[str, str, str]:
    """``(<name>_dense.npy, <name>_sparse.npy, <name>_labels.npy)`` inside ``output_dir``."""
    return tuple(os.path.join(output_dir, f"{name}_{part}.npy") for part in ("dense", "sparse", "labels"))  # type: ignore[return-value]
