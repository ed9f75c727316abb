"""``RwSparseFeaturesWriteDist`` and ``RwSequenceEmbeddingSharding.create_write_dist`` / ``create_update``: rows
written on any rank land in the row block of the rank owning them (gloo, W=2; references computed by hand)."""

import torch
import torch.distributed as dist
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
from recsys_lib.distributed.sharding.rw_sharding import RwSequenceEmbeddingSharding, RwSparseFeaturesWriteDist
from recsys_lib.distributed.sharding.rw_sharding.write_dist import source_to_feature_major
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ParameterSharding, ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingTableConfig
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

ROWS = [10, 7]  # features a (blocks 5 | 5) and b (blocks 4 | 3)


def test_source_to_feature_major_example():
    assert source_to_feature_major(torch.tensor([[1, 2], [1, 0]])).tolist() == [0, 3, 1, 2]
    assert source_to_feature_major(torch.zeros(2, 2, dtype=torch.int64)).tolist() == []


def _writes(rank):
    """Rank r writes ids of a and b; row = [global id, source rank, feature index]."""
    ids = {0: ([7, 1, 9], [3, 6]), 1: ([2, 5], [0])}[rank]
    lengths = {0: [2, 1, 1, 1], 1: [1, 1, 0, 1]}[rank]
    values = torch.tensor(ids[0] + ids[1])
    rows = torch.tensor([[float(i), float(rank), float(f)] for f, part in enumerate(ids) for i in part])
    return KeyedJaggedTensor.from_lengths_sync(["a", "b"], values, torch.tensor(lengths), weights=rows)


def _exchange(rank, world, keep):
    pg = dist.group.WORLD
    wd = RwSparseFeaturesWriteDist(pg, 2, ROWS, is_sequence=True, keep_original_indices=keep)
    out = wd(_writes(rank)).wait().wait()
    assert out.keys() == ["a", "b"]
    assert wd.unbucketize_permute_tensor is not None
    starts = [5 * rank, 4 * rank]
    got = {}
    for f, (key, ids, rows) in enumerate(zip(out.keys(), out.values().split(out.length_per_key()),
                                             out.weights().split(out.length_per_key()))):
        global_ids = ids if keep else ids + starts[f]
        assert torch.equal(rows[:, 0].long(), global_ids)  # each id arrived with its own row
        assert (rows[:, 2] == f).all()
        assert rows[:, 1].tolist() == sorted(rows[:, 1].tolist())  # sources in rank order
        got[key] = sorted(global_ids.tolist())
    # every written id lands on the rank whose block holds it
    want = {0: {"a": [1, 2], "b": [0, 3]}, 1: {"a": [5, 7, 9], "b": [6]}}[rank]
    assert got == want


def _info(name, rows, dim, shards):
    cfg = EmbeddingTableConfig(num_embeddings=rows, embedding_dim=dim, name=name, feature_names=[name],
                               embedding_names=[name])
    spec = EnumerableShardingSpec([ShardMetadata([o, 0], [n, dim], f"rank:{r}/cpu") for r, o, n in shards])
    ps = ParameterSharding("row_wise", "dense", ranks=[r for r, _, _ in shards], sharding_spec=spec)
    return EmbeddingShardingInfo(cfg, ps, torch.empty(rows, dim))


def _write_into_sharding(rank, world):
    # uneven blocks: a rows [0, 2) | [2, 10); b rows [0, 4) | [4, 7)
    infos = [_info("a", 10, 3, [(0, 0, 2), (1, 2, 8)]), _info("b", 7, 3, [(0, 0, 4), (1, 4, 3)])]
    sharding = RwSequenceEmbeddingSharding(infos, ShardingEnv.from_process_group(dist.group.WORLD))
    lookup = sharding.create_lookup()
    update = sharding.create_update(lookup)
    before = [w.detach().clone() for k in lookup._emb_modules for w in k.split_embedding_weights()]
    update(sharding.create_write_dist()(_writes(rank)).wait().wait())
    after = [w for k in lookup._emb_modules for w in k.split_embedding_weights()]
    starts = {"a": [0, 2][rank], "b": [0, 4][rank]}
    names = [t.name for g in sharding._placement.local_grouped_configs for t in g.embedding_tables]
    all_ids = {"a": [7, 1, 9, 2, 5], "b": [3, 6, 0]}
    for name, old, new in zip(names, before, after):
        expected = old.clone()
        for i in all_ids[name]:
            local = i - starts[name]
            if 0 <= local < old.size(0):
                expected[local, 0] = float(i)  # row = [global id, source rank, feature index]
                expected[local, 2] = 0.0 if name == "a" else 1.0
        torch.testing.assert_close(new[:, [0, 2]], expected[:, [0, 2]])
        untouched = [r for r in range(old.size(0)) if r + starts[name] not in all_ids[name]]
        torch.testing.assert_close(new[untouched], old[untouched])


def _all_writes(rank, world):
    _exchange(rank, world, keep=False)
    _exchange(rank, world, keep=True)
    _write_into_sharding(rank, world)


def test_write_dist_and_sequence_sharding_update():
    """One spawn (process start-up dominates): local ids, original ids, then writes through a sharding."""
    run_multiprocess(_all_writes, 2)
