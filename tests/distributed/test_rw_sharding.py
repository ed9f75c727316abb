"""Row-wise sharding: bucketing (pure, T0) and sharded EBC/EC vs the unsharded modules on gloo (T2).

The T2 matrix runs in one process group per (world size, ranks per host); see ``_row_split_cases``.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.rw_sharding import layout
from recsys_lib.distributed._sharded.body import check_ids
from recsys_lib.distributed.sharding.rw_sharding.layout import RowBuckets, row_boundaries
from recsys_lib.distributed.sharding.rw_sharding.pooled import bucketize_features, mean_divisor
from recsys_lib.distributed.sharding.rw_sharding._local_order import pooled_column_index
from recsys_lib.distributed.sharding.rw_sharding.placement import row_wise_placement
from recsys_lib.distributed.types import ParameterSharding
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
from tests.distributed._row_split_cases import Case, check, register

# ---- T0: pure bucketing ----


def _reference_bucketize(keys, lengths, values, bounds_of, world):
    """Plain-Python bucketing: per bucket, per key, per sample, the ids that fall in the bucket (rebased),
    with their original positions in the bag and their index in the flat values."""
    out = {}  # (bucket, key, sample) -> list of (local id, position, flat index)
    batch = len(lengths) // len(keys)
    flat = 0
    for f, key in enumerate(keys):
        for b in range(batch):
            for pos in range(int(lengths[f * batch + b])):
                v = int(values[flat])
                bounds = bounds_of[key]
                k = next(i for i in range(world) if bounds[i] <= v < bounds[i + 1])
                out.setdefault((k, f, b), []).append((v - bounds[k], pos, flat))
                flat += 1
    return out


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    rows=st.lists(st.integers(1, 13), min_size=1, max_size=3),
    world=st.integers(1, 4),
    batch=st.integers(1, 3),
    data=st.data(),
)
def test_bucketize_matches_plain_python(rows, world, batch, data):
    keys = [f"f{i}" for i in range(len(rows))]
    lengths = [data.draw(st.integers(0, 4)) for _ in range(len(keys) * batch)]
    values = []
    for f, r in enumerate(rows):
        n = sum(lengths[f * batch:(f + 1) * batch])
        values += [data.draw(st.integers(0, r - 1)) for _ in range(n)]
    bounds = {k: tuple(min(r, i * -(-r // world)) for i in range(world + 1)) for k, r in zip(keys, rows)}
    buckets = RowBuckets(tuple(keys), tuple(rows), tuple(bounds[k] for k in keys))
    kjt = KeyedJaggedTensor(keys=keys, values=torch.tensor(values, dtype=torch.int64),
                            lengths=torch.tensor(lengths, dtype=torch.int64))
    got, permute = bucketize_features(kjt, buckets, bucketize_pos=True, sequence=True)
    assert got.keys() == keys * world
    expected = _reference_bucketize(keys, lengths, values, bounds, world)
    got_lengths = got.lengths().view(world, len(keys), batch)
    flat_v, flat_w = got.values().tolist(), got.weights().tolist()
    i = 0
    new_index = {}
    for k in range(world):
        for f in range(len(keys)):
            for b in range(batch):
                exp = expected.get((k, f, b), [])
                assert int(got_lengths[k, f, b]) == len(exp)
                for local, pos, orig in exp:
                    assert flat_v[i] == local and flat_w[i] == pos
                    new_index[orig] = i
                    i += 1
    expected_permute = [new_index[j] for j in range(len(values))]
    if world == 1:  # one bucket: nothing moves, no permutation is computed
        assert permute is None and expected_permute == list(range(len(values)))
    else:
        assert permute.tolist() == expected_permute


def test_uneven_row_boundaries_and_empty_shards():
    assert row_boundaries("t", 5, [(0, 2), (2, 2), (4, 1), (5, 0)]) == (0, 2, 4, 5, 5)
    with pytest.raises(ValueError, match="consecutive row blocks"):
        row_boundaries("t", 5, [(0, 2), (3, 3)])
    with pytest.raises(ValueError, match="cover 4 of 5 rows"):
        row_boundaries("t", 5, [(0, 2), (2, 2)])
    # explicit (non-block) sizes [4, 0, 1]: id 4 goes to bucket 2 as local row 0
    buckets = RowBuckets(("f",), (5,), ((0, 4, 4, 5),))
    assert buckets.uniform_blocks() is None
    kjt = KeyedJaggedTensor(keys=["f"], values=torch.tensor([4, 0, 3]), lengths=torch.tensor([2, 1]))
    got, _ = bucketize_features(kjt, buckets)
    assert got.lengths().tolist() == [1, 1, 0, 0, 1, 0]
    assert got.values().tolist() == [0, 3, 0]


def test_weights_follow_their_ids():
    buckets = RowBuckets(("f",), (4,), ((0, 2, 4),))
    kjt = KeyedJaggedTensor(keys=["f"], values=torch.tensor([3, 0, 2]), lengths=torch.tensor([3]),
                            weights=torch.tensor([0.5, 1.5, 2.5]))
    got, _ = bucketize_features(kjt, buckets)
    assert got.values().tolist() == [0, 1, 0] and got.weights().tolist() == [1.5, 0.5, 2.5]


def test_out_of_range_ids_are_a_clear_error():
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=torch.tensor([0, 1, 7, 2]), lengths=torch.tensor([2, 2]))
    check_ids(kjt, [2, 8], "x")
    with pytest.raises(ValueError, match=r"feature 'b' has id 7 outside its table's rows \[0, 5\)"):
        check_ids(kjt, [2, 5], "x")
    with pytest.raises(ValueError, match=r"feature 'a' has id -1"):
        check_ids(KeyedJaggedTensor(keys=["a"], values=torch.tensor([-1]), lengths=torch.tensor([1])), [3], "x")


def test_mean_divisor_counts_global_bag_lengths():
    kjt = KeyedJaggedTensor(keys=["a", "b"], values=torch.arange(5), lengths=torch.tensor([2, 0, 1, 2]))
    assert mean_divisor(kjt, [False, False]) is None
    assert mean_divisor(kjt, [True, False]).tolist() == [[2.0, 1.0], [1.0, 1.0]]


def _info(name, rows, dim, shards, pooling=PoolingType.SUM):
    cfg = EmbeddingTableConfig(num_embeddings=rows, embedding_dim=dim, name=name, feature_names=[f"{name}_f"],
                               embedding_names=[f"{name}_f"], pooling=pooling)
    spec = EnumerableShardingSpec([ShardMetadata([o, 0], [n, dim], f"rank:{r}/cpu") for r, (o, n) in enumerate(shards)])
    ps = ParameterSharding("row_wise", "fused", ranks=list(range(len(shards))), sharding_spec=spec)
    return EmbeddingShardingInfo(cfg, ps, torch.empty(rows, dim))


def test_placement_documented_table():
    sizes, offsets = layout.shard_sizes_and_offsets(10, 4, 4, 4)
    t0 = _info("t0", 10, 4, [(o[0], s[0]) for s, o in zip(sizes, offsets)], PoolingType.MEAN)
    sizes, offsets = layout.shard_sizes_and_offsets(5, 4, 4, 4)
    t1 = _info("t1", 5, 4, [(o[0], s[0]) for s, o in zip(sizes, offsets)])
    p = row_wise_placement([t0, t1], world_size=4, rank=3)
    assert [[t.local_rows for t in ts] for ts in p.tables_per_bucket] == [[3, 2], [3, 2], [3, 1], [1, 0]]
    assert p.feature_names() == ["t0_f", "t1_f"] and p.mean_features() == [True, False]
    assert p.row_buckets().boundaries == ((0, 3, 6, 9, 10), (0, 2, 4, 5, 5))
    # MEAN tables are looked up with SUM pooling, so on rank 0 both share one kernel
    p0 = row_wise_placement([t0, t1], world_size=4, rank=0)
    assert len(p0.local_grouped_configs) == 1 and p0.local_grouped_configs[0].pooling == PoolingType.SUM
    # rank 3's empty t1 shard goes to the dense kernel (FBGEMM's fused CPU TBE mishandles empty tables)
    assert [g.compute_kernel.value for g in p.local_grouped_configs] == ["fused", "dense"]
    assert p.local_feature_order() is None  # same feature order as bucket 0: nothing to permute


def test_local_feature_order_when_an_empty_shard_changes_the_kernels():
    sizes, offsets = layout.shard_sizes_and_offsets(1, 4, 2, 2)  # [1, 0]: empty on rank 1
    a = _info("a", 1, 4, [(o[0], s[0]) for s, o in zip(sizes, offsets)])
    b = _info("b", 4, 4, [(0, 2), (2, 2)])
    b.fused_params = {"use_one_tbe_per_table": True}
    c = _info("c", 4, 4, [(0, 2), (2, 2)])
    assert row_wise_placement([a, b, c], world_size=2, rank=0).local_feature_order() is None
    p = row_wise_placement([a, b, c], world_size=2, rank=1)
    assert p.feature_names() == ["a_f", "c_f", "b_f"]  # bucket 0's kernels: (a, c), (b)
    assert p.local_feature_order() == [0, 2, 1]  # rank 1's kernels: (a) dense, (b), (c)
    assert pooled_column_index([1, 0], [2, 3]) == [3, 4, 0, 1, 2]


def test_placement_rejects_shards_out_of_rank_order():
    bad = _info("t", 4, 2, [(0, 2), (2, 2)])
    bad.param_sharding.sharding_spec.shards[0].placement = bad.param_sharding.sharding_spec.shards[1].placement
    with pytest.raises(ValueError):
        row_wise_placement([bad], world_size=2, rank=0)


# ---- T2: sharded vs unsharded on gloo ----

_W = ((1, 1), (2, 2), (4, 4))
CASES = [
    Case("rw_ebc_sum_fused", worlds=_W),
    Case("rw_ebc_mean_fused", pooling="MEAN", worlds=_W),
    Case("rw_ebc_mix_dense", pooling="MIX", kernel="dense", worlds=_W),
    Case("rw_ebc_weighted_fused", weighted=True, worlds=_W),
    Case("rw_ebc_weighted_dense", weighted=True, kernel="dense", worlds=_W),
    Case("rw_ec_fused", module="ec", worlds=_W),
    Case("rw_ec_dense", module="ec", kernel="dense", worlds=_W),
    Case("rw_ebc_id_out_of_range", bad_ids=True, worlds=_W),
    Case("rw_ec_id_out_of_range", module="ec", bad_ids=True, worlds=_W),
    Case("rw_ebc_collectives_per_step", count=True, worlds=_W[1:]),
]
register(*CASES)
MATRIX = [
    pytest.param(case, world, local, id=f"{case.name}-w{world}", marks=[pytest.mark.slow] if world == 4 else [])
    for case in CASES for world, local in case.worlds
]


@pytest.mark.dist
@pytest.mark.parametrize("case,world,local", MATRIX)
def test_row_wise_equals_unsharded(case, world, local):
    check(case, world, local)
