"""HybridEvalDMP: no DDP by default, ``to()`` leaves sharded modules in place, ``share_embedding_memory`` maps
every rank's CPU embedding parameters onto rank 0's (world 2, gloo; checked against rank 0's values)."""

import torch
import torch.distributed as dist
from torch import nn

from recsys_lib.distributed.model_parallel import HybridEvalDMP
from recsys_lib.distributed.test_utils.multi_process import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from tests.distributed._sharding_helpers import ebc_tables


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.ebc = EmbeddingBagCollection(ebc_tables(PoolingType.SUM))
        self.dense = nn.Linear(4, 2)


def _case(rank, world):
    torch.manual_seed(rank)  # different initial weights on each rank
    dmp = HybridEvalDMP(_Model(), env=ShardingEnv.from_process_group(dist.group.WORLD), device=torch.device("cpu"))
    assert not isinstance(dmp._dmp_wrapped_module, nn.parallel.DistributedDataParallel)
    sharded_ids = {n: id(p) for n, p in dmp.module.ebc.named_parameters()}
    dmp.to(torch.float64)
    assert dmp.module.dense.weight.dtype == torch.float64
    assert {n: id(p) for n, p in dmp.module.ebc.named_parameters()} == sharded_ids  # sharded part untouched
    assert all(p.dtype == torch.float32 for p in dmp.module.ebc.parameters())
    dmp.share_embedding_memory(dist.group.WORLD)
    values = {n: p.detach().clone() for n, p in dmp.module.ebc.named_parameters()}
    gathered = [None] * world
    dist.all_gather_object(gathered, values)
    for name in values:
        torch.testing.assert_close(gathered[1][name], gathered[0][name])
    return sorted(values)


def test_hybrid_eval_dmp_world_2():
    r0, r1 = run_multiprocess(_case, 2)
    assert r0 == r1 and r0
