"""Shared pieces of the dataset loaders: the ``Batch`` type, file/CSV datapipes and train/val splits.

Every path goes through an iopath ``PathManager`` (looked up by ``path_manager_key``), so local paths work
out of the box and other iopath handlers (e.g. manifold, S3) plug in by registering with that manager.
"""

import csv
import functools
import random
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Tuple, TypeVar

import torch
from iopath.common.file_io import PathManager, PathManagerFactory
from torch.utils.data import IterDataPipe, get_worker_info

from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from recsys_lib.streamable import Pipelineable

PATH_MANAGER_KEY = "torchrec"

T = TypeVar("T")


def get_path_manager(path_manager_key: str = PATH_MANAGER_KEY) -> PathManager:
    """The iopath ``PathManager`` registered under ``path_manager_key`` (created on first use)."""
    return PathManagerFactory.get(path_manager_key)


@dataclass
class Batch(Pipelineable):
    """One training batch, as produced by every loader in ``recsys_lib.datasets``.

    Shapes: ``dense_features`` (B, num_dense) float; ``sparse_features`` a ``KeyedJaggedTensor`` with stride B;
    ``labels`` (B,).
    """

    dense_features: torch.Tensor
    sparse_features: KeyedJaggedTensor
    labels: torch.Tensor

    def to(self, device: torch.device, non_blocking: bool = False) -> "Batch":
        return Batch(
            dense_features=self.dense_features.to(device=device, non_blocking=non_blocking),
            sparse_features=self.sparse_features.to(device=device, non_blocking=non_blocking),
            labels=self.labels.to(device=device, non_blocking=non_blocking),
        )

    def record_stream(self, stream: torch.Stream) -> None:
        self.dense_features.record_stream(stream)
        self.sparse_features.record_stream(stream)
        self.labels.record_stream(stream)

    def pin_memory(self) -> "Batch":
        return Batch(
            dense_features=self.dense_features.pin_memory(),
            sparse_features=self.sparse_features.pin_memory(),
            labels=self.labels.pin_memory(),
        )


def safe_cast(val: Any, dest_type: Callable[[Any], Any], default: Any) -> Any:
    """``dest_type(val)``, or ``default`` when the conversion raises ``ValueError``/``TypeError``."""
    try:
        return dest_type(val)
    except (ValueError, TypeError):
        return default


class LoadFiles(IterDataPipe):
    """Opens each path of ``datapipe`` through iopath and yields ``(path, stream)``.

    Args:
        datapipe: iterable of paths.
        mode: ``"b"`` (binary) or ``"t"`` (text), or a full open mode such as ``"r"``.
        length: value returned by ``len()`` (``-1``: unknown, ``len()`` raises ``TypeError``).
        path_manager_key: iopath ``PathManagerFactory`` key.
        **open_kw: forwarded to ``PathManager.open`` (e.g. ``encoding``).
    """

    def __init__(
        self,
        datapipe: Iterable[str],
        mode: str = "b",
        length: int = -1,
        path_manager_key: str = PATH_MANAGER_KEY,
        **open_kw: Any,
    ) -> None:
        super().__init__()
        if mode in ("b", "t"):
            mode = "r" + mode
        if not mode.startswith("r") or "+" in mode:
            raise ValueError(f"LoadFiles opens files for reading only; got mode={mode!r}")
        self.datapipe = datapipe
        self.mode = mode
        self.length = length
        self.path_manager_key = path_manager_key
        self.open_kw = open_kw

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        pm = get_path_manager(self.path_manager_key)
        for path in self.datapipe:
            if not isinstance(path, str):
                raise TypeError(f"LoadFiles expects paths as str, got {type(path).__name__}: {path!r}")
            yield path, pm.open(path, self.mode, **self.open_kw)

    def __len__(self) -> int:
        if self.length == -1:
            raise TypeError(f"{type(self).__name__} has no length (pass length=...)")
        return self.length


class ReadLinesFromCSV(IterDataPipe):
    """Reads ``(path, text stream)`` pairs as CSV and yields each row as ``List[str]``.

    Args:
        datapipe: yields ``(path, stream)``, e.g. ``LoadFiles(paths, mode="r")``.
        skip_first_line: drop each file's header row.
        **kw: forwarded to ``csv.reader`` (e.g. ``delimiter="\\t"``).
    """

    def __init__(self, datapipe: IterDataPipe, skip_first_line: bool = False, **kw: Any) -> None:
        super().__init__()
        self.datapipe = datapipe
        self.skip_first_line = skip_first_line
        self.kw = kw

    def __iter__(self) -> Iterator[List[str]]:
        for _, stream in self.datapipe:
            try:
                reader = csv.reader(stream, **self.kw)
                if self.skip_first_line:
                    next(reader, None)
                yield from reader
            finally:
                stream.close()


class Limit(IterDataPipe):
    """Yields at most ``limit`` items of ``datapipe``."""

    def __init__(self, datapipe: IterDataPipe, limit: int) -> None:
        super().__init__()
        if limit < 0:
            raise ValueError(f"Limit: limit must be >= 0, got {limit}")
        self.datapipe = datapipe
        self.limit = limit

    def __iter__(self) -> Iterator[Any]:
        if self.limit == 0:
            return
        for idx, item in enumerate(self.datapipe):
            yield item
            if idx + 1 >= self.limit:
                return


def _default_dp_selector(datapipes: List[IterDataPipe]) -> List[IterDataPipe]:
    """Gives DataLoader worker ``w`` of ``n`` the datapipes ``w, w + n, w + 2n, ...`` (all of them in-process)."""
    info = get_worker_info()
    if info is None:
        return list(datapipes)
    if info.num_workers > len(datapipes):
        raise ValueError(
            f"{info.num_workers} DataLoader workers but only {len(datapipes)} datapipes: some workers would read nothing"
        )
    return list(datapipes)[info.id :: info.num_workers]


class ParallelReadConcat(IterDataPipe):
    """Concatenates datapipes, splitting them across DataLoader workers with ``dp_selector``."""

    def __init__(
        self,
        *datapipes: IterDataPipe,
        dp_selector: Callable[[List[IterDataPipe]], List[IterDataPipe]] = _default_dp_selector,
    ) -> None:
        super().__init__()
        self.datapipes = list(datapipes)
        self.dp_selector = dp_selector

    def __iter__(self) -> Iterator[Any]:
        for dp in self.dp_selector(self.datapipes):
            yield from dp


class _RandFilter(IterDataPipe):
    """Keeps item ``i`` iff ``filter_fn(u_i)`` with ``u_i`` the i-th draw of ``random.Random(seed)``.

    Each pass restarts the generator, so two filters with the same seed and complementary ``filter_fn`` split
    the stream into disjoint parts that together cover it, identically on every epoch.
    """

    def __init__(self, datapipe: IterDataPipe, filter_fn: Callable[[float], bool], seed: int) -> None:
        super().__init__()
        self.datapipe = datapipe
        self.filter_fn = filter_fn
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        rng = random.Random(self.seed)
        for item in self.datapipe:
            if self.filter_fn(rng.random()):
                yield item


def _below(threshold: float, u: float) -> bool:
    return u < threshold


def _not_below(threshold: float, u: float) -> bool:
    return u >= threshold


def _check_perc(train_perc: float) -> None:
    if not 0.0 < train_perc < 1.0:
        raise ValueError(f"train_perc must be in (0.0, 1.0), got {train_perc}")


def rand_split_train_val(
    datapipe: IterDataPipe, train_perc: float, random_seed: int = 0
) -> Tuple[IterDataPipe, IterDataPipe]:
    """Random but reproducible split: each item lands in train with probability ``train_perc``.

    Returns ``(train, val)``; they are disjoint and together hold every item, in order.
    """
    _check_perc(train_perc)
    return (
        _RandFilter(datapipe, functools.partial(_below, train_perc), random_seed),
        _RandFilter(datapipe, functools.partial(_not_below, train_perc), random_seed),
    )


def _default_key_fn(idx: int) -> int:
    return idx


def train_filter(key_fn: Callable[[int], int], train_perc: float, decimal_places: int, idx: int) -> bool:
    """True when item ``idx`` belongs to train: ``key_fn(idx) mod 10**d < round(train_perc * 10**d)``."""
    scale = 10**decimal_places
    return key_fn(idx) % scale < round(train_perc * scale)


def val_filter(key_fn: Callable[[int], int], train_perc: float, decimal_places: int, idx: int) -> bool:
    """Complement of ``train_filter``."""
    return not train_filter(key_fn, train_perc, decimal_places, idx)


class _IdxFilter(IterDataPipe):
    def __init__(self, datapipe: IterDataPipe, keep: Callable[[int], bool]) -> None:
        super().__init__()
        self.datapipe = datapipe
        self.keep = keep

    def __iter__(self) -> Iterator[Any]:
        for idx, item in enumerate(self.datapipe):
            if self.keep(idx):
                yield item


def idx_split_train_val(
    datapipe: IterDataPipe,
    train_perc: float,
    decimal_places: int = 2,
    key_fn: Callable[[int], int] = _default_key_fn,
) -> Tuple[IterDataPipe, IterDataPipe]:
    """Deterministic split by item index: with ``decimal_places=2`` and ``train_perc=0.9``, items whose
    ``key_fn(index) % 100 < 90`` go to train, the rest to val. Returns ``(train, val)``."""
    _check_perc(train_perc)
    scale = 10**decimal_places
    if abs(train_perc * scale - round(train_perc * scale)) > 1e-9:
        raise ValueError(f"train_perc={train_perc} has more than decimal_places={decimal_places} decimal places")
    return (
        _IdxFilter(datapipe, functools.partial(train_filter, key_fn, train_perc, decimal_places)),
        _IdxFilter(datapipe, functools.partial(val_filter, key_fn, train_perc, decimal_places)),
    )
