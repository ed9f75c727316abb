"""Sharded EBC / EC methods and options TorchRec users call: sharding order overwrite, data-parallel replica
initialisation, TorchRec's construction helpers, embedding writes on a collection without updates. Each checks
against the unsharded module or rank 0's weights (world 2, gloo)."""

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.embedding import EmbeddingCollectionSharder, ShardedEmbeddingCollection
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection, EmbeddingCollection
from tests.distributed._sharding_helpers import ebc_tables, ec_tables, global_batch, param_sharding


def _plan(tables, world):
    # t0, t2 data parallel; t1, t3 table-wise on different ranks
    return {
        "t0": param_sharding("data_parallel", 11, tables[0].embedding_dim, list(range(world))),
        "t1": param_sharding("table_wise", 23, tables[1].embedding_dim, [0]),
        "t2": param_sharding("data_parallel", 7, tables[2].embedding_dim, list(range(world))),
        "t3": param_sharding("table_wise", 17, tables[3].embedding_dim, [world - 1]),
    }


def _ebc_case(rank, world):
    tables = ebc_tables(PoolingType.SUM, dims=(8, 8, 8, 8))
    torch.manual_seed(0)
    ebc = EmbeddingBagCollection(tables)
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    sharder = EmbeddingBagCollectionSharder(sharded_module_order_overwrite=["TABLE_WISE"])
    sharded = sharder.shard(ebc, _plan(tables, world), env, torch.device("cpu"))
    assert list(sharded._sharding_type_to_sharding) == ["table_wise", "data_parallel"]
    batches = global_batch(tables, world, 3, False, seed=5)
    kt = sharded(batches[rank]).wait()
    ref = ebc(batches[rank])
    for key in ref.keys():
        torch.testing.assert_close(kt[key], ref[key])
    # replicas drift apart, init_data_parallel brings rank 0's weights back everywhere
    dp_weight = sharded._lookups[1].module._emb_modules[0].emb_module.weights
    with torch.no_grad():
        dp_weight.add_(float(rank))
    sharded.init_data_parallel()
    every = [torch.empty_like(dp_weight) for _ in range(world)]
    dist.all_gather(every, dp_weight.detach())
    torch.testing.assert_close(every[0], every[1])
    sharded.create_rocksdb_hard_link_snapshot()  # no key-value tables: nothing to snapshot
    return True


def test_ebc_order_overwrite_and_data_parallel_init_world_2():
    assert run_multiprocess(_ebc_case, 2) == [True, True]


def _ec_case(rank, world):
    tables = ec_tables()
    torch.manual_seed(0)
    ec = EmbeddingCollection(tables)
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    plan = _plan(tables, world)
    infos = ShardedEmbeddingCollection.create_grouped_sharding_infos(ec, plan, None)
    assert set(infos) == {"data_parallel", "table_wise"}
    sharding = ShardedEmbeddingCollection.create_embedding_sharding("table_wise", infos["table_wise"], env)
    assert sorted(sharding.embedding_names()) == ["f1", "f2", "f4"]
    sharded = EmbeddingCollectionSharder().shard(ec, plan, env, torch.device("cpu"))
    assert not sharded.enable_embedding_update
    with pytest.raises(ValueError, match="enable_embedding_update is False"):
        sharded.write_dist(sharded.create_context(), global_batch(tables, 1, 2, False, seed=1)[0])
    batches = global_batch(tables, world, 3, False, seed=7)
    out = sharded(batches[rank]).wait()
    ref = ec(batches[rank])
    assert list(out) == list(ref)
    for key in ref:
        torch.testing.assert_close(out[key].values(), ref[key].values())
        torch.testing.assert_close(out[key].lengths(), ref[key].lengths())
    return True


def test_ec_construction_helpers_and_writes_world_2():
    assert run_multiprocess(_ec_case, 2) == [True, True]


def test_pad_vbe_kjt_lengths_pads_every_key_to_the_largest_batch():
    from recsys_lib.distributed.embedding import pad_vbe_kjt_lengths
    from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

    kjt = KeyedJaggedTensor(keys=["a", "b", "c"], values=torch.arange(1, 8), lengths=torch.tensor([2, 1, 1, 0, 1, 2]),
                            stride_per_key_per_rank=[[2], [1], [3]])
    padded = pad_vbe_kjt_lengths(kjt)
    assert padded.stride() == 3 and not padded.variable_stride_per_key()
    assert padded.lengths().tolist() == [2, 1, 0, 1, 0, 0, 0, 1, 2]
    assert padded.values().tolist() == list(range(1, 8))
    assert padded["c"].to_dense()[2].tolist() == [6, 7]
