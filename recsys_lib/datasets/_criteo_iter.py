"""``InMemoryBinaryCriteoIterDataPipe``: batches of preprocessed Criteo ``.npy`` files, split across ranks."""

from typing import Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import IterableDataset

from recsys_lib._public import public_at
from recsys_lib.datasets._criteo_constants import CAT_FEATURE_COUNT, DEFAULT_CAT_NAMES, INT_FEATURE_COUNT
from recsys_lib.datasets._npy_io import check_complete, npy_header, read_ranges
from recsys_lib.datasets._row_ranges import batch_row_spans, rank_row_span
from recsys_lib.datasets.utils import PATH_MANAGER_KEY, Batch, get_path_manager
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_STAGES = ("train", "val", "test")


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    # Memory-mapped slices are read-only; torch needs a writable, contiguous buffer.
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, order="C")
    return torch.from_numpy(arr)


def np_arrays_to_batch(dense: np.ndarray, sparse: np.ndarray, labels: np.ndarray) -> Batch:
    """(B, 13) dense, (B, 26) ids, (B, 1) labels → ``Batch`` with one id per feature per sample.

    ``sparse_features``: keys ``cat_0..cat_25``, values key-major ``(26*B,)``, lengths all 1.
    """
    b = dense.shape[0]
    num_keys = sparse.shape[1]
    values = _as_tensor(np.ascontiguousarray(sparse.T).reshape(-1))
    kjt = KeyedJaggedTensor(
        keys=DEFAULT_CAT_NAMES[:num_keys],
        values=values,
        lengths=torch.ones(num_keys * b, dtype=torch.int32),
        stride=b,
        length_per_key=[b] * num_keys,
        offset_per_key=[b * k for k in range(num_keys + 1)],
    )
    return Batch(dense_features=_as_tensor(dense), sparse_features=kjt, labels=_as_tensor(labels.reshape(-1)))


@public_at("recsys_lib.datasets.criteo")
class InMemoryBinaryCriteoIterDataPipe(IterableDataset):
    """Reads this rank's rows of Criteo ``.npy`` day files into memory and yields ``Batch`` objects.

    Stage rows::

        stage "train":        all rows of all files
        stage "val"/"test":   first ceil(n/2) / remaining rows of the last file (n rows)

    Batches are dealt to ranks round-robin, as TorchRec 1.8.0 does (see ``_row_ranges.batch_row_spans``):
    batch ``k`` of the stage goes to rank ``k % world_size``, and the rows after the last whole round form
    one final, smaller or larger, batch per rank. Every row is read by exactly one rank and all ranks yield the
    same number of batches (unless there are fewer rows than ranks); ``drop_last=True`` drops the rows after
    the last whole round. Only the rank's own rows are read (or, with ``mmap_mode``, mapped).

    Args:
        stage: ``"train"``, ``"val"`` or ``"test"``.
        dense_paths, sparse_paths, labels_paths: one file per day, ``(N, 13)`` float32, ``(N, 26)`` ids,
            ``(N, 1)`` int32.
        batch_size, rank, world_size: batch size per rank and this reader's place.
        drop_last: see above.
        shuffle_batches: permute the rows inside each batch (seeded by ``shuffle_training_set_random_seed``,
            the rank and the epoch).
        shuffle_training_set: for ``"train"``, permute all rows (same seed on all ranks), give each rank a
            contiguous span of the permutation and batch it in order (the rank's rows are gathered into memory;
            as in TorchRec, rank ``r`` then yields ``ceil(rows_r / batch_size)`` batches, or
            ``rows_r // batch_size`` with ``drop_last``, so ranks may differ by one batch).
        mmap_mode: memory-map the files instead of reading the rows in (hashing then happens per batch).
        hashes: 26 table sizes; ids become ``id % hashes[f]``.
        path_manager_key: iopath key.

    Example::

        dp = InMemoryBinaryCriteoIterDataPipe("train", dense, sparse, labels, batch_size=2048,
                                              rank=0, world_size=1, hashes=[100_000] * 26)
        loader = DataLoader(dp, batch_size=None, collate_fn=lambda x: x)
    """

    def __init__(
        self,
        stage: str,
        dense_paths: List[str],
        sparse_paths: List[str],
        labels_paths: List[str],
        batch_size: int,
        rank: int,
        world_size: int,
        drop_last: Optional[bool] = False,
        shuffle_batches: bool = False,
        shuffle_training_set: bool = False,
        shuffle_training_set_random_seed: int = 0,
        mmap_mode: bool = False,
        hashes: Optional[List[int]] = None,
        path_manager_key: str = PATH_MANAGER_KEY,
    ) -> None:
        super().__init__()
        if stage not in _STAGES:
            raise ValueError(f"stage must be one of {_STAGES}, got {stage!r}")
        if not dense_paths or not len(dense_paths) == len(sparse_paths) == len(labels_paths):
            raise ValueError(
                f"need the same non-zero number of dense, sparse and labels files, got "
                f"{len(dense_paths)}, {len(sparse_paths)}, {len(labels_paths)}"
            )
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if hashes is not None:
            if len(hashes) != CAT_FEATURE_COUNT or any(h <= 0 for h in hashes):
                raise ValueError(f"hashes must be {CAT_FEATURE_COUNT} positive ints, got {hashes}")
        self.stage = stage
        self.dense_paths, self.sparse_paths, self.labels_paths = list(dense_paths), list(sparse_paths), list(labels_paths)
        self.batch_size = batch_size
        self.rank, self.world_size = rank, world_size
        self.drop_last = bool(drop_last)
        self.shuffle_batches = shuffle_batches
        self.shuffle_training_set = shuffle_training_set
        self.shuffle_training_set_random_seed = shuffle_training_set_random_seed
        self.mmap_mode = mmap_mode
        self.hashes: Optional[np.ndarray] = None if hashes is None else np.array(hashes, dtype=np.int64).reshape(1, -1)
        self.path_manager_key = path_manager_key
        self._pm = get_path_manager(path_manager_key)
        self._epoch = 0

        lengths = self._check_files()
        start_row, end_row = self._stage_rows(lengths)
        self._file_starts = np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)
        if shuffle_training_set and stage == "train":
            self._load_shuffled(lengths, start_row, end_row)
        else:
            spans = batch_row_spans(end_row - start_row, batch_size, rank, world_size, self.drop_last)
            self._load_spans([(lo + start_row, hi + start_row) for lo, hi in spans])
        if not self.mmap_mode and self.hashes is not None:
            for arr in self.sparse_arrs:
                arr %= self.hashes.astype(arr.dtype)
        self.num_batches = len(self._batches)

    def _check_files(self) -> List[int]:
        lengths = []
        for d, s, l in zip(self.dense_paths, self.sparse_paths, self.labels_paths):
            dn, sp, lb = check_complete(d, self._pm), check_complete(s, self._pm), check_complete(l, self._pm)
            if len(dn) != 2 or dn[1] != INT_FEATURE_COUNT:
                raise ValueError(f"{d}: expected dense shape (N, {INT_FEATURE_COUNT}), got {dn}")
            if sp != (dn[0], CAT_FEATURE_COUNT):
                raise ValueError(f"{s}: expected sparse shape ({dn[0]}, {CAT_FEATURE_COUNT}) to match {d}, got {sp}")
            if lb != (dn[0], 1):
                raise ValueError(f"{l}: expected labels shape ({dn[0]}, 1) to match {d}, got {lb}")
            lengths.append(dn[0])
        return lengths

    def _stage_rows(self, lengths: List[int]) -> Tuple[int, int]:
        """Global half-open row span of the stage over the concatenated files."""
        if self.stage == "train":
            return 0, sum(lengths)
        first = sum(lengths[:-1])
        half = -(-lengths[-1] // 2)
        return (first, first + half) if self.stage == "val" else (first + half, first + lengths[-1])

    def _split_by_file(self, lo: int, hi: int) -> List[Tuple[int, int, int]]:
        """Global half-open row span → [(file index, local first row, local end row)]."""
        pieces = []
        f = int(np.searchsorted(self._file_starts, lo, side="right")) - 1
        while lo < hi:
            end = min(hi, int(self._file_starts[f + 1]))
            if end > lo:
                pieces.append((f, lo - int(self._file_starts[f]), end - int(self._file_starts[f])))
            lo, f = end, f + 1
        return pieces

    def _load_spans(self, spans: List[Tuple[int, int]]) -> None:
        """Loads (or maps) exactly the rows of this rank's batches; ``_batches`` indexes into them."""
        per_batch = [self._split_by_file(lo, hi) for lo, hi in spans]
        n_files = len(self.dense_paths)
        self.dense_arrs, self.sparse_arrs, self.labels_arrs = [], [], []
        if self.mmap_mode:
            for arrs, paths in self._kinds():
                arrs.extend(np.load(self._pm.get_local_path(p), mmap_mode="r") for p in paths)
            self._batches = per_batch
            return
        # Read each file's needed ranges once, compactly, and re-point the batch pieces at the compact rows.
        ranges: List[List[Tuple[int, int]]] = [[] for _ in range(n_files)]
        compact: List[int] = [0] * n_files
        self._batches = []
        for pieces in per_batch:
            batch = []
            for f, a, b in pieces:
                ranges[f].append((a, b))
                batch.append((f, compact[f], compact[f] + b - a))
                compact[f] += b - a
            self._batches.append(batch)
        for arrs, paths in self._kinds():
            arrs.extend(read_ranges(p, ranges[f], self._pm) for f, p in enumerate(paths))

    def _kinds(self) -> List[Tuple[List[np.ndarray], List[str]]]:
        return [(self.dense_arrs, self.dense_paths), (self.sparse_arrs, self.sparse_paths), (self.labels_arrs, self.labels_paths)]

    def _load_shuffled(self, lengths: List[int], start_row: int, end_row: int) -> None:
        """Gathers the rows ``perm[lo:hi]`` of a seeded permutation shared by all ranks, batched in order."""
        total = end_row - start_row
        lo, hi = rank_row_span(total, self.rank, self.world_size)
        mine = np.random.default_rng(self.shuffle_training_set_random_seed).permutation(total)[lo:hi] + start_row
        order = np.argsort(mine, kind="stable")
        sorted_rows = mine[order]
        starts = self._file_starts
        self.dense_arrs, self.sparse_arrs, self.labels_arrs = [], [], []
        for arrs, paths in self._kinds():
            result = None
            for idx, path in enumerate(paths):
                a, b = np.searchsorted(sorted_rows, [starts[idx], starts[idx + 1]])
                if a == b:
                    continue
                mm = np.load(self._pm.get_local_path(path), mmap_mode="r")
                rows = mm[sorted_rows[a:b] - starts[idx]]
                if result is None:
                    result = np.empty((len(mine),) + rows.shape[1:], dtype=rows.dtype)
                result[order[a:b]] = rows
            if result is None:  # this rank has no rows
                shape, dtype, _ = npy_header(paths[0], self._pm)
                result = np.empty((0,) + shape[1:], dtype=dtype)
            arrs.append(result)
        self.mmap_mode = False  # the rows now live in memory
        n = hi - lo
        if self.drop_last:  # per rank, as TorchRec: a rank with one more row may keep one more full batch
            n = n // self.batch_size * self.batch_size
        b = self.batch_size
        self._batches = [[(0, s, min(s + b, n))] for s in range(0, n, b)]

    def __iter__(self) -> Iterator[Batch]:
        rng = np.random.default_rng((self.shuffle_training_set_random_seed, self.rank, self._epoch))
        self._epoch += 1
        for pieces in self._batches:
            parts = []
            for arrs in (self.dense_arrs, self.sparse_arrs, self.labels_arrs):
                chunks = [arrs[f][a:b] for f, a, b in pieces]
                parts.append(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
            dense, sparse, labels = parts
            if self.mmap_mode and self.hashes is not None:
                sparse = sparse % self.hashes.astype(sparse.dtype)
            if self.shuffle_batches:
                perm = rng.permutation(dense.shape[0])
                dense, sparse, labels = dense[perm], sparse[perm], labels[perm]
            yield np_arrays_to_batch(dense, sparse, labels)

    def __len__(self) -> int:
        return self.num_batches
