"""Fully sharded fused kernels (2-D): weights averaged over the replica group between forward and backward.

Reference: plain-PyTorch lookups on each rank's own weights for the forward, then SGD applied by hand to the
replica average of the weights with this rank's gradient.
"""

import pytest
import torch
import torch.distributed as dist
from fbgemm_gpu.split_embedding_configs import EmbOptimType

from recsys_lib.distributed.batched_embedding_kernel import (
    ReduceScatterResizeAwaitable,
    ShardedBatchedFusedEmbedding,
    ShardedBatchedFusedEmbeddingBag,
)
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import PoolingType
from tests.distributed._embedding_refs import group, pooled_reference, random_kjt, sequence_reference, table

LR = 0.1
FTM = [0, 1, 1]
ROWS = [11, 7, 7]


class _Env2D(ShardingEnv):
    """A 2-D environment whose replica group is the whole world (each rank holds one full copy)."""

    def __init__(self, world_size, rank, pg):
        super().__init__(world_size, rank, pg)
        self.replica_pg = pg

    def num_sharding_groups(self):
        return dist.get_world_size(self.replica_pg)


def _case(rank, world_size, pooled):
    fp = {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR}
    pooling = PoolingType.SUM if pooled else PoolingType.NONE
    tables = [table("t0", 11, 8, ["f0"], pooling=pooling, fused_params=fp),
              table("t1", 7, 8, ["f1", "f2"], pooling=pooling, fused_params=fp)]
    config = group(tables, pooling=pooling, fused_params=fp)
    env = _Env2D(world_size, rank, dist.group.WORLD)
    cls = ShardedBatchedFusedEmbeddingBag if pooled else ShardedBatchedFusedEmbedding
    m = cls(config, env=env)
    m.train()
    g = torch.Generator().manual_seed(10 + rank)  # different weights on each rank
    with torch.no_grad():
        for w in m.split_embedding_weights():
            w.copy_(torch.randn(w.shape, generator=g))
    own = [w.detach().clone() for w in m.split_embedding_weights()]
    gathered = [[torch.empty_like(w) for _ in range(world_size)] for w in own]
    for out_list, w in zip(gathered, own):
        dist.all_gather(out_list, w)
    avg = [torch.stack(ws).mean(0) for ws in gathered]

    kjt = random_kjt(["f0", "f1", "f2"], ROWS, 4, seed=rank)
    out = m(kjt)
    ref = pooled_reference(own, FTM, kjt, "sum") if pooled else sequence_reference(own, FTM, kjt)
    torch.testing.assert_close(out, ref)
    rs = m.get_rs_awaitable()
    assert isinstance(rs, ReduceScatterResizeAwaitable)
    m.ensure_reduce_scatter_complete()
    assert m.weights_sharded and m.get_rs_awaitable() is None
    flat_avg = torch.cat([a.reshape(-1) for a in avg])
    shard = -(-flat_avg.numel() // world_size)
    mine = torch.cat([flat_avg, flat_avg.new_zeros(world_size * shard - flat_avg.numel())])[rank * shard:(rank + 1) * shard]
    torch.testing.assert_close(m._weight_sharder.shard_buf, mine)

    grad_out = torch.randn(out.shape, generator=torch.Generator().manual_seed(99 + rank))
    out.backward(grad_out)
    assert not m.weights_sharded
    leaves = [a.clone().requires_grad_(True) for a in avg]
    ref = pooled_reference(leaves, FTM, kjt, "sum") if pooled else sequence_reference(leaves, FTM, kjt)
    ref.backward(grad_out)
    for w, leaf in zip(m.split_embedding_weights(), leaves):
        torch.testing.assert_close(w, leaf.detach() - LR * leaf.grad)
    return True


@pytest.mark.parametrize("pooled", [True, False])
def test_fully_sharded_kernel_averages_replicas(pooled):
    assert run_multiprocess(_case, 2, pooled) == [True, True]


def test_fully_sharded_kernel_needs_a_2d_env():
    config = group([table("t0", 11, 8, ["f0"])])
    with pytest.raises(ValueError, match="ShardingEnv2D"):
        ShardedBatchedFusedEmbeddingBag(config)
