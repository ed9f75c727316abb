"""TorchRec's inference dists (``Infer*EmbeddingDist``, ``Infer*SparseFeaturesDist``) on one host, no process
group: each composed into a sharded lookup over plain ``torch`` tables and compared with the unsharded lookup."""

import pytest
import torch
import torch.nn.functional as F

from recsys_lib import KeyedJaggedTensor
from recsys_lib.distributed.embedding_types import InputDistOutputs, KJTList
from recsys_lib.distributed.sharding.cw_sequence_sharding import InferCwSequenceEmbeddingDist
from recsys_lib.distributed.sharding.cw_sharding import InferCwPooledEmbeddingDist, InferCwPooledEmbeddingDistWithPermute
from recsys_lib.distributed.sharding.rw_sequence_sharding import InferRwSequenceEmbeddingDist
from recsys_lib.distributed.sharding.rw_sharding import InferRwPooledEmbeddingDist, InferRwSparseFeaturesDist
from recsys_lib.distributed.sharding.sequence_sharding import InferSequenceShardingContext
from recsys_lib.distributed.sharding.tw_sequence_sharding import InferTwSequenceEmbeddingDist
from recsys_lib.distributed.sharding.tw_sharding import InferTwPooledEmbeddingDist, InferTwSparseFeaturesDist

CPU = torch.device("cpu")
ROWS = {"a": 10, "b": 7, "c": 5}  # rows differ from each other and from the batch size (B=4)


def _batch(weighted: bool = False, seed: int = 0) -> KeyedJaggedTensor:
    g = torch.Generator().manual_seed(seed)
    keys = ["a", "b", "c"]
    lengths = torch.randint(0, 4, (len(keys) * 4,), generator=g)
    lengths[1] = 0
    ids = torch.cat([torch.randint(0, ROWS[k], (int(n),), generator=g)
                     for k, n in zip(keys, lengths.view(3, 4).sum(1))])
    w = torch.rand(ids.numel(), generator=g) if weighted else None
    return KeyedJaggedTensor.from_lengths_sync(keys, ids, lengths, weights=w)


def _tables(dim: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(r, dim, generator=g) for k, r in ROWS.items()}


def _pooled(kjt: KeyedJaggedTensor, tables) -> torch.Tensor:
    """Unsharded reference: SUM-pooled bags of every feature side by side ``(B, ΣD)``."""
    outs = []
    for k, jt in kjt.to_dict().items():
        offsets = torch.cat([torch.zeros(1, dtype=torch.long), jt.lengths().cumsum(0)])[:-1]
        outs.append(F.embedding_bag(jt.values(), tables[k], offsets, mode="sum", per_sample_weights=jt.weights_or_none()))
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("weighted", [False, True])
def test_rw_pooled_pipeline_equals_unsharded(world, weighted):
    kjt, tables = _batch(weighted), _tables()
    keys = kjt.keys()
    dist = InferRwSparseFeaturesDist(world, len(keys), [ROWS[k] for k in keys], device=CPU)
    out = dist(kjt)
    assert isinstance(out, InputDistOutputs) and isinstance(out.features, KJTList) and len(out.features) == world
    local = []
    for r, rank_kjt in enumerate(out.features):
        assert rank_kjt.keys() == keys
        # rank r holds rows [r*block, (r+1)*block) of every table, block = ceil(R / W)
        shard = {k: tables[k][r * -(-ROWS[k] // world):(r + 1) * -(-ROWS[k] // world)] for k in keys}
        local.append(_pooled(rank_kjt, shard) if all(v.numel() for v in shard.values()) else
                     _pooled_with_empty(rank_kjt, shard))
    summed = InferRwPooledEmbeddingDist(CPU, world)(local)
    torch.testing.assert_close(summed, _pooled(kjt, tables))


def _pooled_with_empty(kjt, shard):
    # a rank past the last row of a small table receives no ids of it: its partial sum is zero
    fixed = {k: (v if v.numel() else torch.zeros(1, 4)) for k, v in shard.items()}
    return _pooled(kjt, fixed)


def test_rw_sequence_pipeline_equals_unsharded_and_reports_buckets():
    kjt, tables, world = _batch(), _tables(), 2
    keys = kjt.keys()
    dist = InferRwSparseFeaturesDist(world, len(keys), [ROWS[k] for k in keys], device=CPU, is_sequence=True)
    out = dist(kjt)
    blocks = [-(-ROWS[k] // world) for k in keys]
    rows = []
    for r, rank_kjt in enumerate(out.features):
        for k, b, jt in zip(keys, blocks, rank_kjt.to_dict().values()):
            rows.append(F.embedding(jt.values(), tables[k][r * b:(r + 1) * b]))
    per_rank = [torch.cat(rows[:3]), torch.cat(rows[3:])]
    ctx = InferSequenceShardingContext(features=out.features, features_before_input_dist=kjt,
                                       unbucketize_permute_tensor=out.unbucketize_permute_tensor)
    moved = InferRwSequenceEmbeddingDist(CPU, world, "cuda")(per_rank, ctx)
    bucketized_rows = torch.cat(moved)
    got = bucketized_rows[out.unbucketize_permute_tensor]  # back to input order
    want = torch.cat([F.embedding(jt.values(), tables[k]) for k, jt in kjt.to_dict().items()])
    torch.testing.assert_close(got, want)
    # the rank every input id went to, and the bucketized lengths (W * F, B)
    ids_rank = torch.cat([jt.values() // b for jt, b in zip(kjt.to_dict().values(), blocks)])
    assert out.bucket_mapping_tensor.tolist() == ids_rank.tolist()
    assert out.bucketized_length.shape == (world * len(keys), 4)
    assert out.bucketized_length.sum().item() == kjt.values().numel()


def test_rw_uneven_row_blocks_from_shard_metadata_and_positions():
    # feature a: rows [0, 2) | [2, 10); ids 7, 1, 9 in bags | 7 1 | 9 |
    kjt = KeyedJaggedTensor.from_lengths_sync(["a"], torch.tensor([7, 1, 9]), torch.tensor([2, 1]))
    dist = InferRwSparseFeaturesDist(2, 1, [10], device=CPU, has_feature_processor=True,
                                     embedding_shard_metadata=[[0, 2, 10]])
    r0, r1 = dist(kjt).features
    assert r0.values().tolist() == [1] and r0.lengths().tolist() == [1, 0]
    assert r1.values().tolist() == [5, 7] and r1.lengths().tolist() == [1, 1]
    # no weights + a feature processor: each id's position in its bag becomes its weight
    assert r0.weights().tolist() == [1] and r1.weights().tolist() == [0, 0]


def test_rw_out_of_range_ids_are_rejected():
    dist = InferRwSparseFeaturesDist(2, 1, [10], device=CPU)
    with pytest.raises(ValueError, match="'a'.*10"):
        dist(KeyedJaggedTensor.from_lengths_sync(["a"], torch.tensor([10]), torch.tensor([1])))


def test_tw_pipeline_equals_unsharded():
    kjt, tables = _batch(), _tables()
    dist = InferTwSparseFeaturesDist([2, 1], 2, CPU)
    out = dist(kjt)
    assert [k.keys() for k in out.features] == [["a", "b"], ["c"]]
    local = [_pooled(k, tables) for k in out.features]
    torch.testing.assert_close(InferTwPooledEmbeddingDist(CPU, 2)(local), _pooled(kjt, tables))
    # sequence: rows of ranks that hold names, moved to one device
    seq = [torch.cat([F.embedding(jt.values(), tables[k]) for k, jt in f.to_dict().items()]) for f in out.features]
    ctx = InferSequenceShardingContext(features=out.features, embedding_names_per_rank=[["a", "b"], ["c"]])
    moved = InferTwSequenceEmbeddingDist(CPU, 3, None, [["a", "b"], [], ["c"]])(seq[:1] + [torch.empty(0)] + seq[1:], ctx)
    assert len(moved) == 2 and all(torch.equal(x, y) for x, y in zip(moved, seq))
    assert InferTwSequenceEmbeddingDist(CPU, 2, "cpu")(seq, ctx) is not None
    with pytest.raises(ValueError, match="InferSequenceShardingContext"):
        InferTwSequenceEmbeddingDist(CPU, 2)(seq, None)


def test_cw_blocks_put_back_in_column_order():
    kjt, tables = _batch(), _tables(dim=6)
    # every table split in column blocks [0, 2) on rank 1 and [2, 6) on rank 0
    left = {k: t[:, :2] for k, t in tables.items()}
    right = {k: t[:, 2:] for k, t in tables.items()}
    local = [_pooled(kjt, right), _pooled(kjt, left)]  # rank 0: [a2 b2 c2] (width 4 each), rank 1: [a1 b1 c1]
    cat = InferCwPooledEmbeddingDist(CPU, 2)(local)
    torch.testing.assert_close(cat, torch.cat(local, dim=1))
    dims = [4, 4, 4, 2, 2, 2]  # blocks in concatenated order: a2 b2 c2 a1 b1 c1
    permute = [3, 0, 4, 1, 5, 2]  # output: a1 a2 b1 b2 c1 c2
    got = InferCwPooledEmbeddingDistWithPermute(CPU, 2, dims, permute)(local)
    torch.testing.assert_close(got, _pooled(kjt, tables))
    with pytest.raises(ValueError, match="not a permutation"):
        InferCwPooledEmbeddingDistWithPermute(CPU, 2, dims, [0, 0, 1, 2, 3, 4])
    seq = [torch.ones(3, 4), torch.zeros(3, 2)]
    ctx = InferSequenceShardingContext(features=KJTList([kjt, kjt]))
    assert [t.shape for t in InferCwSequenceEmbeddingDist(CPU, 2)(seq, ctx)] == [(3, 4), (3, 2)]


def test_rw_sequence_dist_keeps_cpu_shards_in_place():
    a, b = torch.ones(2, 3), torch.zeros(1, 3)
    ctx = InferSequenceShardingContext(features=KJTList([]), embedding_names_per_rank=[["x"], ["x"]])
    assert InferRwSequenceEmbeddingDist(CPU, 2, "cpu")([a, b], ctx)[0] is a
    out = InferRwSequenceEmbeddingDist(CPU, 2, ("cpu", "cuda"))([a, b], ctx)
    assert out[0] is a and torch.equal(out[1], b)
