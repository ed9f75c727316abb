"""Spawned case for the replicated row-wise KJT pool: 4 ranks as 2 hosts x 2 local ranks (``LOCAL_WORLD_SIZE=2``).

Reference: a plain-torch ``{slot: {feature: (values, weights)}}`` dict applying every rank's update in rank order
(each rank recomputes it from the shared seed). Every rank's lookup must match it, and both hosts must hold the same
rows (compared through an all-gather of each rank's local states).
"""

from typing import Dict, List, Tuple

import torch
import torch.distributed as dist

from recsys_lib.distributed.keyed_jagged_tensor_pool import KeyedJaggedTensorPoolSharder
from recsys_lib.distributed.types import ObjectPoolShardingPlan, ObjectPoolShardingType, ShardingEnv
from recsys_lib.modules.keyed_jagged_tensor_pool import KeyedJaggedTensorPool
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

POOL = 9  # blocks of 5 over 2 local ranks: the second holds 4
CAPS = {"a": 2, "b": 3}
ROUNDS = 3

Row = Dict[str, Tuple[List[int], List[float]]]


def _update(g: torch.Generator, n: int) -> Tuple[torch.Tensor, KeyedJaggedTensor]:
    ids = torch.randint(0, POOL, (n,), generator=g)  # repeats within and across ranks
    lengths = torch.cat([torch.randint(0, 4, (n,), generator=g), torch.randint(0, 3, (n,), generator=g)])
    values = torch.randint(0, 1000, (int(lengths.sum()),), generator=g)
    weights = torch.rand(values.numel(), generator=g)
    # keys in another order than the pool's
    return ids, KeyedJaggedTensor(keys=["b", "a"], values=values, lengths=lengths, weights=weights, stride=n)


def _apply(ref: Dict[int, Row], ids: torch.Tensor, kjt: KeyedJaggedTensor) -> None:
    per_key = kjt.to_dict()
    for i, slot in enumerate(ids.tolist()):
        row: Row = {}
        for key, cap in CAPS.items():
            jt = per_key[key]
            vals, wts = jt.to_dense()[i].tolist(), jt.to_dense_weights()[i].tolist()
            row[key] = (vals[:cap], wts[:cap])
        ref[slot] = row


def _check_lookup(got: KeyedJaggedTensor, ids: torch.Tensor, ref: Dict[int, Row]) -> None:
    assert got.keys() == list(CAPS) and got.stride() == ids.numel()
    per_key = got.to_dict()
    for key in CAPS:
        vals, wts = per_key[key].to_dense(), per_key[key].to_dense_weights()
        for i, slot in enumerate(ids.tolist()):
            want_v, want_w = ref.get(slot, {}).get(key, ([], []))
            assert vals[i].tolist() == want_v, (key, slot, vals[i], want_v)
            torch.testing.assert_close(wts[i], torch.tensor(want_w, dtype=wts[i].dtype))


def replicated_kjt_pool_case(rank: int, world: int, seed: int = 3) -> Dict[str, object]:
    g = torch.Generator().manual_seed(seed)
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    plan = ObjectPoolShardingPlan(ObjectPoolShardingType.REPLICATED_ROW_WISE)
    pool = KeyedJaggedTensorPoolSharder().shard(KeyedJaggedTensorPool(POOL, CAPS, is_weighted=True), plan, env,
                                                torch.device("cpu"))
    ref: Dict[int, Row] = {}
    for _ in range(ROUNDS):
        updates = [_update(g, int(torch.randint(0, 5, (1,), generator=g))) for _ in range(world)]
        for ids, kjt in updates:
            _apply(ref, ids, kjt)
        pool.update(*updates[rank])
        asks = [torch.randint(0, POOL, (int(torch.randint(0, 7, (1,), generator=g)),), generator=g)
                for _ in range(world)]
        _check_lookup(pool.lookup(asks[rank]).wait(), asks[rank], ref)
    _check_lookup(pool.lookup(torch.arange(POOL)).wait(), torch.arange(POOL), ref)
    sd = pool.state_dict()
    shapes = {k: (tuple(v.size()), [tuple(s.metadata.shard_offsets) for s in v.local_shards()]) for k, v in sd.items()}
    local = {k: v.local_shards()[0].tensor.clone() for k, v in sd.items()}
    gathered: List[Dict[str, torch.Tensor]] = [{} for _ in range(world)]
    dist.all_gather_object(gathered, local)
    return {"shapes": shapes, "local_pool_size": pool._sharding.local_pool_size, "all_local": gathered}
