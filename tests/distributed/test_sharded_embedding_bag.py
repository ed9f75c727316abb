"""A single ``nn.EmbeddingBag`` sharded at world 2 equals the unsharded bag on each rank's batch (forward and
SGD update), for row-wise, column-wise and data-parallel plans; table-wise is refused as in TorchRec."""

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType
from torch import nn
from torch.distributed._shard.metadata import ShardMetadata
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

from recsys_lib.distributed.embeddingbag import EmbeddingBagSharder, ShardedEmbeddingBag
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from recsys_lib.distributed.types import ParameterSharding, ShardingEnv
from tests.distributed._sharding_helpers import param_sharding

ROWS, DIM, LR = 20, 8, 0.1


def _plan(kind):
    if kind == "row_wise":
        spec = EnumerableShardingSpec([ShardMetadata([0, 0], [12, DIM], "rank:0/cpu"),
                                       ShardMetadata([12, 0], [8, DIM], "rank:1/cpu")])
        return {"weight": ParameterSharding("row_wise", "fused", ranks=[0, 1], sharding_spec=spec)}
    return {"weight": param_sharding(kind, ROWS, DIM, [0, 1])}


def _batch(rank):
    g = torch.Generator().manual_seed(rank)
    lengths = torch.tensor([2, 0, 3, 1])
    ids = torch.randint(0, ROWS, (int(lengths.sum()),), generator=g)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])  # B + 1 offsets (KJT style)
    return ids, offsets


def _case(rank, world, kind):
    torch.manual_seed(0)
    bag = nn.EmbeddingBag(ROWS, DIM, mode="sum")
    reference = nn.EmbeddingBag(ROWS, DIM, mode="sum")
    reference.load_state_dict(bag.state_dict())
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    sharder = EmbeddingBagSharder(fused_params={"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    sharded = sharder.shard(bag, _plan(kind), env, torch.device("cpu"))
    assert isinstance(sharded, ShardedEmbeddingBag) and list(sharded.state_dict()) == ["weight"]
    ids, offsets = _batch(rank)
    out = sharded(ids, offsets).wait()
    torch.testing.assert_close(out, reference(ids, offsets[:-1]))
    if kind == "data_parallel":
        return True
    # gradient division (TorchRec's default): the update is that of the mean of the ranks' losses
    out.sum().backward()
    grads = torch.zeros(ROWS, DIM)
    for r in range(world):
        ids_r, offsets_r = _batch(r)
        reference.zero_grad()
        reference(ids_r, offsets_r[:-1]).sum().backward()
        grads += reference.weight.grad
    expected = bag.weight.detach() - LR * grads / world
    full = torch.zeros(ROWS, DIM) if rank == 0 else None
    sharded.state_dict()["weight"].gather(0, full)
    if rank == 0:
        torch.testing.assert_close(full, expected)
    return True


def _all_kinds(rank, world):
    return [_case(rank, world, kind) for kind in ("row_wise", "column_wise", "data_parallel")]


def test_sharded_embedding_bag_matches_nn_embedding_bag_world_2():
    assert run_multiprocess(_all_kinds, 2) == [[True] * 3] * 2


def _table_wise(rank, world):
    bag = nn.EmbeddingBag(ROWS, DIM, mode="sum")
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    with pytest.raises(RuntimeError, match="table-wise"):
        EmbeddingBagSharder().shard(bag, {"weight": param_sharding("table_wise", ROWS, DIM, [0])}, env)
    with pytest.raises(ValueError, match="mode='sum'"):
        EmbeddingBagSharder().shard(nn.EmbeddingBag(ROWS, DIM, mode="mean"), _plan("column_wise"), env)
    return True


def _refusals_and_helpers(rank, world):
    return _table_wise(rank, world), _create_sharding(rank, world)


def test_sharded_embedding_bag_refuses_table_wise_and_mean_and_builds_shardings():
    # permute_embeddings=False (TorchRec's default): one dim per column shard; True: combined into the full dim
    assert run_multiprocess(_refusals_and_helpers, 2) == [(True, ([DIM // 2, DIM // 2], [DIM]))] * 2


def _create_sharding(rank, world):
    from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
    from recsys_lib.modules.embedding_configs import EmbeddingTableConfig, PoolingType

    env = ShardingEnv.from_process_group(dist.group.WORLD)
    config = EmbeddingTableConfig(num_embeddings=ROWS, embedding_dim=DIM, name="t", feature_names=["f"],
                                  pooling=PoolingType.SUM, embedding_names=["f"])
    info = EmbeddingShardingInfo(config, _plan("column_wise")["weight"], torch.zeros(ROWS, DIM), None)
    uncombined = ShardedEmbeddingBag.create_embedding_bag_sharding([info], env)
    combined = ShardedEmbeddingBag.create_embedding_bag_sharding([info], env, permute_embeddings=True)
    return uncombined.embedding_dims(), combined.embedding_dims()
