"""Random recommendation batches: the built-in data for smoke tests, examples and benchmarks."""

import itertools
from typing import Iterator, List, Optional

import torch
from torch.utils.data.dataset import IterableDataset

from recsys_lib.datasets.utils import Batch
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor


def _per_key(name: str, many: Optional[List[int]], default: List[int], n: int) -> List[int]:
    values = default if many is None else [int(v) for v in many]
    if len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries for {n} keys")
    return values


class _RandomRecBatch:
    """Iterator over ``num_generated_batches`` pre-generated random ``Batch``es, cycled.

    Per key ``k`` and sample, the number of ids is drawn uniformly from
    ``[min_ids_per_features[k], ids_per_features[k]]`` and the ids from ``[0, hash_sizes[k])``.
    Dense features are standard normal of shape (B, num_dense); labels are 0/1 ints of shape (B,).
    Draw order per batch (lengths and ids per key, then dense, then labels) gives TorchRec's batches for a seed.
    """

    def __init__(
        self,
        keys: List[str],
        batch_size: int,
        hash_sizes: List[int],
        ids_per_features: List[int],
        num_dense: int,
        manual_seed: Optional[int] = None,
        num_generated_batches: int = 10,
        num_batches: Optional[int] = None,
        min_ids_per_features: Optional[List[int]] = None,
        pin_memory: bool = False,
    ) -> None:
        if batch_size <= 0 or num_dense < 0 or num_generated_batches == 0:
            raise ValueError(
                f"batch_size ({batch_size}) must be positive, num_generated_batches ({num_generated_batches}) "
                f"non-zero (negative: a fresh batch every step), num_dense ({num_dense}) >= 0"
            )
        if num_batches is not None and num_batches < 0:
            raise ValueError(f"num_batches must be >= 0, got {num_batches}")
        mins = ids_per_features if min_ids_per_features is None else min_ids_per_features
        for key, h, lo, hi in zip(keys, hash_sizes, mins, ids_per_features):
            if h <= 0 or lo < 0 or hi < lo:
                raise ValueError(f"key {key!r}: need hash size > 0 and 0 <= min ids <= ids, got {h}, {lo}, {hi}")
        self.keys = keys
        self.batch_size = batch_size
        self.hash_sizes = hash_sizes
        self.ids_per_features = ids_per_features
        self.min_ids_per_features = mins
        self.num_dense = num_dense
        self.num_batches = num_batches
        self.pin_memory = pin_memory
        self._generator = torch.Generator()
        if manual_seed is not None:
            self._generator.manual_seed(manual_seed)
        else:
            self._generator.seed()
        # num_generated_batches < 0 (TorchRec's -1): no pool, every step draws a new batch, forever
        self._fresh = num_generated_batches < 0
        self._batches = [] if self._fresh else [self._generate() for _ in range(num_generated_batches)]
        self._cycle = itertools.cycle(self._batches)
        self._emitted = 0

    def _generate(self) -> Batch:
        g, b = self._generator, self.batch_size
        lengths, values = [], []
        for h, lo, hi in zip(self.hash_sizes, self.min_ids_per_features, self.ids_per_features):
            lens = torch.randint(lo, hi + 1, (b,), generator=g, dtype=torch.int32)
            lengths.append(lens)
            values.append(torch.randint(0, h, (int(lens.sum()),), generator=g, dtype=torch.int64))
        kjt = KeyedJaggedTensor(
            keys=list(self.keys),
            values=torch.cat(values) if values else torch.empty(0, dtype=torch.int64),
            lengths=torch.cat(lengths) if lengths else torch.empty(0, dtype=torch.int32),
            stride=b,
        )
        batch = Batch(
            dense_features=torch.randn((b, self.num_dense), generator=g),
            sparse_features=kjt,
            labels=torch.randint(0, 2, (b,), generator=g),
        )
        return batch.pin_memory() if self.pin_memory else batch

    def __iter__(self) -> "_RandomRecBatch":
        return self

    def __next__(self) -> Batch:
        if self.num_batches is not None and self._emitted >= self.num_batches:
            raise StopIteration
        self._emitted += 1
        return self._generate() if self._fresh else next(self._cycle)


RandomRecBatch = _RandomRecBatch


class RandomRecDataset(IterableDataset):
    """Random ``Batch``es with ``len(keys)`` sparse features, for tests and benchmarks.

    Args:
        keys: sparse feature names.
        batch_size: samples per batch (B).
        hash_size / hash_sizes: id range per key (exactly one of them).
        ids_per_feature / ids_per_features: maximum ids per sample and key (exactly one of them).
        num_dense: dense features per sample.
        manual_seed: makes the batches reproducible.
        num_batches: stop after this many batches (``None``: infinite).
        num_generated_batches: distinct batches generated up front and then cycled.
        min_ids_per_feature / min_ids_per_features: minimum ids per sample. Default: with ``ids_per_feature``
            every sample has exactly that many ids; with ``ids_per_features`` counts are drawn from ``[0, max]``.
        num_generated_batches: size of the pool of pre-generated batches that is cycled; negative (TorchRec's
            ``-1``): a new batch every step, forever unless ``num_batches`` is set.

    Example::

        ds = RandomRecDataset(keys=["f1", "f2"], batch_size=4, hash_size=100, ids_per_feature=2,
                              num_dense=3, manual_seed=0, num_batches=5)
        batch = next(iter(ds))   # dense (4, 3); KJT lengths (2*4,) all 2, values (16,)
    """

    def __init__(
        self,
        keys: List[str],
        batch_size: int,
        hash_size: Optional[int] = None,
        hash_sizes: Optional[List[int]] = None,
        ids_per_feature: Optional[int] = None,
        ids_per_features: Optional[List[int]] = None,
        num_dense: int = 50,
        manual_seed: Optional[int] = None,
        num_batches: Optional[int] = None,
        num_generated_batches: int = 10,
        min_ids_per_feature: Optional[int] = None,
        min_ids_per_features: Optional[List[int]] = None,
    ) -> None:
        super().__init__()
        n = len(keys)
        # TorchRec's defaults: the list wins over the scalar; 100 rows and 2 ids per key when neither is given;
        # the minimum count defaults to the scalar ids_per_feature (fixed counts), else 0.
        hashes = _per_key("hash_sizes", hash_sizes, [hash_size if hash_size else 100] * n, n)
        ids = _per_key("ids_per_features", ids_per_features, [ids_per_feature if ids_per_feature else 2] * n, n)
        if min_ids_per_features is None:
            lo = min_ids_per_feature if min_ids_per_feature is not None else ids_per_feature
            mins = [lo if lo else 0] * n
        else:
            mins = _per_key("min_ids_per_features", min_ids_per_features, [], n)
        self.num_batches = num_batches
        self.batch_generator = _RandomRecBatch(
            keys=keys,
            batch_size=batch_size,
            hash_sizes=hashes,
            ids_per_features=ids,
            num_dense=num_dense,
            manual_seed=manual_seed,
            num_generated_batches=num_generated_batches,
            num_batches=None,
            min_ids_per_features=mins,
        )

    def __iter__(self) -> Iterator[Batch]:
        if self.batch_generator._fresh:  # a new random batch per step; num_batches=None: forever
            fresh = iter(self.batch_generator._generate, None)
            return fresh if self.num_batches is None else itertools.islice(fresh, self.num_batches)
        # Every pass restarts at the first pre-generated batch, so epochs are identical.
        cycled = itertools.cycle(self.batch_generator._batches)
        if self.num_batches is None:
            return cycled
        return itertools.islice(cycled, self.num_batches)

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("RandomRecDataset without num_batches is infinite and has no len()")
        return self.num_batches
