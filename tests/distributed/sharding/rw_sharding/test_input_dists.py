"""TorchRec's constructors of the row-split input dists: ``RwSparseFeaturesDist(pg, num_features,
feature_hash_sizes, ...)`` and ``TwRwSparseFeaturesDist(pg, local_size, features_per_rank, feature_hash_sizes)``
(gloo, W=2; the ids every rank must receive are computed by hand)."""

import torch
import torch.distributed as dist

from recsys_lib.distributed.sharding.rw_sharding import RwSparseFeaturesDist
from recsys_lib.distributed.sharding.twrw_sharding import TwRwSparseFeaturesDist
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

# Rank r's batch (B=2): f0 ids in [0, 10), f1 ids in [0, 6)
BATCH = {0: ([7, 1, 9], [2, 1], [3, 5], [1, 1]), 1: ([4], [0, 1], [0, 2, 4], [2, 1])}


def _kjt(rank, weighted=False):
    f0, l0, f1, l1 = BATCH[rank]
    w = torch.arange(len(f0) + len(f1), dtype=torch.float32) + 10 * rank if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(["f0", "f1"], torch.tensor(f0 + f1), torch.tensor(l0 + l1), weights=w)


def _per_key(kjt):
    return {k: jt.values().tolist() for k, jt in kjt.to_dict().items()}


def _dists(rank, world):
    pg = dist.group.WORLD
    # row-wise: blocks f0 [0, 5) | [5, 10), f1 [0, 3) | [3, 6); rank r receives block r of both ranks' batches
    out = RwSparseFeaturesDist(pg, 2, [10, 6]).forward(_kjt(rank)).wait().wait()
    want = {0: {"f0": [1, 4], "f1": [0, 2]}, 1: {"f0": [2, 4], "f1": [0, 2, 1]}}[rank]
    assert out.keys() == ["f0", "f1"] and _per_key(out) == want
    assert out.stride() == 4  # B=2 from each of the 2 ranks
    # original ids kept; positions as weights for a feature processor when the KJT has none
    out = RwSparseFeaturesDist(pg, 2, [10, 6], keep_original_indices=True, has_feature_processor=True)(
        _kjt(rank)).wait().wait()
    want_ids = {0: {"f0": [1, 4], "f1": [0, 2]}, 1: {"f0": [7, 9], "f1": [3, 5, 4]}}[rank]
    assert _per_key(out) == want_ids
    positions = {0: [1, 0, 0, 1], 1: [0, 0, 0, 0, 0]}[rank]  # each id's position in its bag
    assert out.weights().tolist() == positions
    # a weighted KJT keeps its weights unless need_pos
    out = RwSparseFeaturesDist(pg, 2, [10, 6], has_feature_processor=True)(_kjt(rank, True)).wait().wait()
    sent_weights = {0: [1.0, 10.0, 11.0, 12.0], 1: [0.0, 2.0, 3.0, 4.0, 13.0]}[rank]
    assert out.weights().tolist() == sent_weights

    # table-row-wise, two hosts of one rank: f0's table on host 0 (rank 0), f1's on host 1 (rank 1), whole
    out = TwRwSparseFeaturesDist(pg, 1, [1, 1], [10, 6])(_kjt(rank)).wait().wait()
    want = {0: {"f0": [7, 1, 9, 4]}, 1: {"f1": [3, 5, 0, 2, 4]}}[rank]
    assert _per_key(out) == want
    # one host of two ranks: both features' rows over the host's ranks (as row-wise)
    out = TwRwSparseFeaturesDist(pg, 2, [2, 2], [10, 6])(_kjt(rank)).wait().wait()
    want = {0: {"f0": [1, 4], "f1": [0, 2]}, 1: {"f0": [2, 4], "f1": [0, 2, 1]}}[rank]
    assert _per_key(out) == want


def test_row_split_input_dists_with_torchrec_constructors():
    run_multiprocess(_dists, 2)
