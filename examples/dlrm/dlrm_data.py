"""Batches for ``dlrm_main.py``: random Criteo-shaped data, preprocessed Criteo ``.npy`` days, or multi-hot.

* no path: ``RandomRecDataset`` (13 dense, 26 sparse features; ``--multi_hot_sizes`` ids per sample, else 1),
  seeded per rank and stage, ``--limit_*_batches`` batches cycling through 10 generated ones;
* ``--in_memory_binary_criteo_path``: ``InMemoryBinaryCriteoIterDataPipe`` over ``day_<i>_{dense,sparse,labels}.npy``
  (written by ``recsys_lib/datasets/scripts/npy_preproc_criteo.py``): train = every day but the last, val/test =
  the two halves of the last day (criteo_1t: 24 days, criteo_kaggle: 7);
* plus ``--synthetic_multi_hot_criteo_path``: the sparse ids come from ``day_<i>_sparse_multi_hot.npz`` (one array
  per feature ``"0".."25"``, shape (N, multi_hot_size)), dense features and labels from the ``.npy`` days.
"""

import argparse
import os
from typing import Iterable, Iterator, List

import numpy as np
import torch

from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES, InMemoryBinaryCriteoIterDataPipe
from recsys_lib.datasets.random import RandomRecDataset
from recsys_lib.datasets.utils import Batch
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

_DAYS = {"criteo_1t": 24, "criteo_kaggle": 7}
_STAGE_SEED = {"train": 0, "val": 1, "test": 2}


def _random(args: argparse.Namespace, stage: str, rank: int) -> Iterable[Batch]:
    limit = {"train": args.limit_train_batches, "val": args.limit_val_batches, "test": args.limit_test_batches}[stage]
    sizes = args.num_embeddings_per_feature
    dataset = RandomRecDataset(
        keys=DEFAULT_CAT_NAMES,
        batch_size=args.batch_size if stage == "train" else (args.test_batch_size or args.batch_size),
        hash_size=None if sizes else args.num_embeddings,
        hash_sizes=sizes,
        ids_per_feature=None if args.multi_hot_sizes else 1,
        ids_per_features=args.multi_hot_sizes,
        min_ids_per_features=args.multi_hot_sizes,
        num_dense=len(DEFAULT_INT_NAMES),
        manual_seed=args.seed + 1000 * _STAGE_SEED[stage] + rank,
        num_batches=limit if limit is not None else 100,
    )
    # As torchrec_dlrm: the loader pins each Batch (Batch.pin_memory) when --pin_memory is set.
    return torch.utils.data.DataLoader(dataset, batch_size=None, batch_sampler=None, pin_memory=args.pin_memory)


def _day_paths(args: argparse.Namespace, stage: str) -> List[str]:
    days = _DAYS[args.dataset_name]
    chosen = range(days - 1) if stage == "train" else [days - 1]
    return [os.path.join(args.in_memory_binary_criteo_path, f"day_{d}") for d in chosen]


class _MultiHot:
    """Replaces each batch's one-hot ids by the multi-hot rows of the same samples (read in order)."""

    def __init__(self, base: InMemoryBinaryCriteoIterDataPipe, npz_paths: List[str], hashes: List[int]) -> None:
        self._base = base
        self._npz_paths = npz_paths
        self._hashes = hashes

    def __iter__(self) -> Iterator[Batch]:
        arrays = [np.load(p) for p in self._npz_paths]
        per_feature = [np.concatenate([a[str(f)] for a in arrays]) for f in range(len(DEFAULT_CAT_NAMES))]
        row = 0
        for batch in self._base:
            b = batch.labels.numel()
            ids = [torch.from_numpy(np.asarray(x[row:row + b]) % h).reshape(-1) for x, h in zip(per_feature, self._hashes)]
            lengths = torch.tensor([x.shape[1] for x in per_feature]).repeat_interleave(b)
            row += b
            kjt = KeyedJaggedTensor(keys=DEFAULT_CAT_NAMES, values=torch.cat(ids), lengths=lengths.int())
            yield Batch(dense_features=batch.dense_features, sparse_features=kjt, labels=batch.labels)


def get_dataloader(args: argparse.Namespace, stage: str, rank: int, world_size: int) -> Iterable[Batch]:
    if args.in_memory_binary_criteo_path is None:
        return _random(args, stage, rank)
    days = _day_paths(args, stage)
    hashes = args.num_embeddings_per_feature or [args.num_embeddings] * len(DEFAULT_CAT_NAMES)
    base = InMemoryBinaryCriteoIterDataPipe(
        stage=stage,
        dense_paths=[f"{d}_dense.npy" for d in days],
        sparse_paths=[f"{d}_sparse.npy" for d in days],
        labels_paths=[f"{d}_labels.npy" for d in days],
        batch_size=args.batch_size if stage == "train" else (args.test_batch_size or args.batch_size),
        rank=rank,
        world_size=world_size,
        drop_last=args.drop_last_training_batch if stage == "train" else False,
        shuffle_batches=args.shuffle_batches,
        shuffle_training_set=args.shuffle_training_set,
        shuffle_training_set_random_seed=args.seed,
        mmap_mode=args.mmap_mode,
        hashes=hashes,
    )
    if args.synthetic_multi_hot_criteo_path is None:
        return base
    if args.shuffle_batches or args.shuffle_training_set or world_size > 1:
        raise ValueError("--synthetic_multi_hot_criteo_path reads the multi-hot rows in file order: use it on one "
                         "rank without --shuffle_batches/--shuffle_training_set")
    names = [os.path.join(args.synthetic_multi_hot_criteo_path, os.path.basename(d) + "_sparse_multi_hot.npz") for d in days]
    return _MultiHot(base, names, hashes)
