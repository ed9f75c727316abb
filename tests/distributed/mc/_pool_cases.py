"""Spawned cases for the sharded pools: every rank updates / looks up its own ids; the reference is the unsharded
pool applying every rank's update in rank order (each rank recomputes it from the shared seed)."""

import torch
import torch.distributed as dist

from recsys_lib.distributed.keyed_jagged_tensor_pool import KeyedJaggedTensorPoolSharder
from recsys_lib.distributed.tensor_pool import TensorPoolSharder
from recsys_lib.distributed.types import ObjectPoolShardingPlan, ObjectPoolShardingType, ShardingEnv
from recsys_lib.modules.keyed_jagged_tensor_pool import KeyedJaggedTensorPool
from recsys_lib.modules.tensor_pool import TensorPool
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

CPU = torch.device("cpu")
PLAN = ObjectPoolShardingPlan(ObjectPoolShardingType.ROW_WISE)
POOL = 11  # not a multiple of the world size: the last rank holds fewer slots
ROUNDS = 3


def _env():
    return ShardingEnv.from_process_group(dist.group.WORLD)


def tensor_pool_case(rank, world, seed=0):
    g = torch.Generator().manual_seed(seed)
    ref = TensorPool(pool_size=POOL, dim=3, dtype=torch.float32, device=CPU)
    sharded = TensorPoolSharder().shard(TensorPool(pool_size=POOL, dim=3, dtype=torch.float32), PLAN, _env(), CPU)
    for _ in range(ROUNDS):
        updates = []
        for r in range(world):
            n = int(torch.randint(0, 6, (1,), generator=g))
            ids = torch.randint(0, POOL, (n,), generator=g)  # repeats within and across ranks
            updates.append((ids, torch.randn(n, 3, generator=g)))
        for ids, rows in updates:
            ref.update(ids, rows)
        sharded.update(*updates[rank])
        asks = [torch.randint(0, POOL, (int(torch.randint(0, 7, (1,), generator=g)),), generator=g)
                for _ in range(world)]
        torch.testing.assert_close(sharded.lookup(asks[rank]).wait(), ref.lookup(asks[rank]))
    st = sharded.state_dict()["_pool"]
    shard = st.local_shards()[0]
    r0, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
    assert tuple(st.size()) == (POOL, 3)
    torch.testing.assert_close(shard.tensor, ref.pool[r0:r0 + n])
    sharded.load_state_dict({"_pool": st})
    torch.testing.assert_close(sharded.lookup(torch.arange(POOL)).wait(), ref.pool)
    return True


def _kjt(g, n, weighted):
    lengths = torch.cat([torch.randint(0, 3, (n,), generator=g), torch.randint(0, 2, (n,), generator=g)])
    values = torch.randint(0, 1000, (int(lengths.sum()),), generator=g)
    weights = torch.rand(values.numel(), generator=g) if weighted else None
    # keys in a different order from the pool's: both pools must permute
    return KeyedJaggedTensor(keys=["b", "a"], values=values, lengths=lengths, weights=weights, stride=n)


def kjt_pool_case(rank, world, weighted, seed=1):
    g = torch.Generator().manual_seed(seed)
    caps = {"a": 2, "b": 3}
    ref = KeyedJaggedTensorPool(POOL, caps, is_weighted=weighted, device=CPU)
    sharded = KeyedJaggedTensorPoolSharder().shard(KeyedJaggedTensorPool(POOL, caps, is_weighted=weighted), PLAN,
                                                   _env(), CPU)
    for _ in range(ROUNDS):
        updates = []
        for r in range(world):
            n = int(torch.randint(0, 5, (1,), generator=g))
            updates.append((torch.randint(0, POOL, (n,), generator=g), _kjt(g, n, weighted)))
        for ids, kjt in updates:
            ref.update(ids, kjt)
        sharded.update(*updates[rank])
        asks = [torch.randint(0, POOL, (int(torch.randint(0, 6, (1,), generator=g)),), generator=g)
                for _ in range(world)]
        got, want = sharded.lookup(asks[rank]).wait(), ref.lookup(asks[rank])
        assert got.keys() == want.keys() == ["a", "b"]
        assert torch.equal(got.lengths().to(torch.int64), want.lengths().to(torch.int64))
        assert torch.equal(got.values(), want.values())
        if weighted:
            torch.testing.assert_close(got.weights(), want.weights())
    sd = sharded.state_dict()
    assert sorted(sd) == sorted(ref.state_dict())
    for key in sd:
        shard = sd[key].local_shards()[0]
        r0, n = shard.metadata.shard_offsets[0], shard.metadata.shard_sizes[0]
        assert torch.equal(shard.tensor, ref.state_dict()[key][r0:r0 + n]), key
    return True


def bad_pool_ids(rank, world):
    sharded = TensorPoolSharder().shard(TensorPool(pool_size=POOL, dim=3, dtype=torch.float32), PLAN, _env(), CPU)
    try:
        sharded.lookup(torch.tensor([POOL]))
    except ValueError as e:
        return str(e)
    return None


def all_pool_cases(rank, world):
    return {
        "tensor": tensor_pool_case(rank, world),
        "kjt": kjt_pool_case(rank, world, weighted=False),
        "kjt_weighted": kjt_pool_case(rank, world, weighted=True),
        "bad_ids": bad_pool_ids(rank, world),
    }
