"""Inference tensor pools (W "ranks" in one process) against the unsharded pool / plain torch."""

import pytest
import torch

from recsys_lib.distributed.sharding.rw_pool_sharding import InferRwObjectPoolInputDist
from recsys_lib.distributed.tensor_pool import (
    index_select_view,
    LocalShardPool,
    ShardedInferenceTensorPool,
    TensorPoolSharder,
)
from recsys_lib.distributed.types import ObjectPoolShardingPlan, ObjectPoolShardingType, ShardingEnv
from recsys_lib.modules.tensor_pool import TensorPool

CPU = torch.device("cpu")
P, D = 11, 3


def _pool():
    values = torch.arange(P * D, dtype=torch.float32).view(P, D)
    return TensorPool(pool_size=P, dim=D, dtype=torch.float32, device=CPU, loaded_values=values.clone()), values


@pytest.mark.parametrize("world,caps", [(2, None), (4, None), (2, [1, 3]), (4, [2, 1, 1, 4])])
def test_inference_pool_lookup_and_update_equal_plain_torch(world, caps):
    module, reference = _pool()
    plan = ObjectPoolShardingPlan(sharding_type=ObjectPoolShardingType.ROW_WISE, inference=True,
                                  memory_capacity_per_rank=caps)
    sharded = TensorPoolSharder().shard(module, plan, ShardingEnv.from_local(world, 0), CPU)
    assert isinstance(sharded, ShardedInferenceTensorPool)
    sizes = [p._shard.shape[0] for p in sharded._local_shard_pools]
    assert sum(sizes) == P
    if caps is not None:  # proportional split, the last rank takes the rest
        total = sum(caps)
        assert sizes[:-1] == [int(c / total * P) for c in caps[:-1]]
    ids = torch.tensor([10, 0, 5, 5, 3, 7, 1])
    torch.testing.assert_close(sharded(ids), reference[ids])
    upd = torch.tensor([4, 9, 4, 0])
    vals = -torch.arange(12, dtype=torch.float32).view(4, 3)
    sharded.update(upd, vals)
    reference[torch.tensor([9, 0])] = vals[torch.tensor([1, 3])]
    reference[4] = vals[2]  # the last value of a repeated id wins
    torch.testing.assert_close(sharded(torch.arange(P)), reference)
    with pytest.raises(ValueError, match="pool_size"):
        sharded(torch.tensor([P]))


def test_input_dist_and_helpers():
    dist = InferRwObjectPoolInputDist(ShardingEnv.from_local(3, 0), CPU, block_size=torch.tensor([4]))
    per_rank, unbucketize, owner, counts = dist(torch.tensor([9, 1, 4, 0, 11]))
    assert [p.tolist() for p in per_rank] == [[1, 0], [0], [1, 3]]  # local rows, stable within a rank
    assert owner.tolist() == [2, 0, 1, 0, 2] and counts.tolist() == [2, 1, 2]
    flat = torch.cat(per_rank)
    assert torch.equal(index_select_view(flat.float().unsqueeze(1), unbucketize, 1).view(-1),
                       torch.tensor([1.0, 1.0, 0.0, 0.0, 3.0]))
    shard = LocalShardPool(torch.tensor([[1, 2], [3, 4]]))
    shard.update(torch.tensor([1]), torch.tensor([[7, 8]]))
    assert shard(torch.tensor([1, 0])).tolist() == [[7, 8], [1, 2]]


def _kjt(seed, n, weighted=True):
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    g = torch.Generator().manual_seed(seed)
    lengths = torch.stack([torch.randint(0, 3, (n,), generator=g), torch.randint(0, 4, (n,), generator=g)]).flatten()
    total = int(lengths.sum())
    return KeyedJaggedTensor(keys=["a", "b"], values=torch.randint(0, 100, (total,), generator=g), lengths=lengths,
                             weights=torch.rand(total, generator=g) if weighted else None)


def _same(x, y):
    assert x.keys() == y.keys() and torch.equal(x.lengths().long(), y.lengths().long())
    assert torch.equal(x.values(), y.values())
    torch.testing.assert_close(x.weights_or_none(), y.weights_or_none())


@pytest.mark.parametrize("world", [2, 4])
def test_inference_kjt_pool_equals_unsharded_pool(world):
    from recsys_lib.distributed.keyed_jagged_tensor_pool import (
        KeyedJaggedTensorPoolSharder,
        ShardedInferenceKeyedJaggedTensorPool,
    )
    from recsys_lib.modules.keyed_jagged_tensor_pool import KeyedJaggedTensorPool

    pool = KeyedJaggedTensorPool(pool_size=9, feature_max_lengths={"a": 2, "b": 3}, is_weighted=True, device=CPU)
    pool.update(torch.tensor([8, 0, 4, 5, 2]), _kjt(0, 5))
    plan = ObjectPoolShardingPlan(sharding_type=ObjectPoolShardingType.ROW_WISE, inference=True)
    sharded = KeyedJaggedTensorPoolSharder().shard(pool, plan, ShardingEnv.from_local(world, 0), CPU)
    assert isinstance(sharded, ShardedInferenceKeyedJaggedTensorPool)
    ids = torch.tensor([5, 8, 1, 0, 4, 4])
    _same(sharded(ids), pool.lookup(ids))
    new_ids, new_vals = torch.tensor([7, 2, 3]), _kjt(1, 3)
    sharded.update(new_ids, new_vals)
    pool.update(new_ids, new_vals)
    _same(sharded(torch.arange(9)), pool.lookup(torch.arange(9)))
    twice = _kjt(2, 2)
    sharded.update(torch.tensor([6, 6]), twice)  # the last sample wins
    pool.update(torch.tensor([6]), _second(twice))
    _same(sharded(torch.tensor([6])), pool.lookup(torch.tensor([6])))


def _second(kjt):
    """The KJT holding only the second sample of ``kjt`` (stride 2)."""
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    d = kjt.to_dict()
    vals, wts, lens = [], [], []
    for k in kjt.keys():
        jt = d[k]
        l0, l1 = [int(x) for x in jt.lengths()]
        vals.append(jt.values()[l0:l0 + l1])
        wts.append(jt.weights()[l0:l0 + l1])
        lens.append(l1)
    return KeyedJaggedTensor(keys=kjt.keys(), values=torch.cat(vals), weights=torch.cat(wts),
                             lengths=torch.tensor(lens))
