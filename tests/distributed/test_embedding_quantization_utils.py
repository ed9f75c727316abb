"""utils.EmbeddingQuantizationUtils: a sharded EBC's fused tables in FP16 and back, against the unsharded EBC
with FP16-rounded weights (gloo, world of one)."""

import copy

import pytest
import torch
import torch.distributed as dist

from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan, table_wise
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv, ShardingPlan
from recsys_lib.distributed.utils import EmbeddingQuantizationUtils
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from recsys_lib.types import DataType
from tests.distributed._sharding_helpers import ebc_tables, global_batch


def _round_trip(rank, world):
    torch.manual_seed(0)
    tables = ebc_tables(PoolingType.SUM)
    ebc = EmbeddingBagCollection(tables)
    reference = copy.deepcopy(ebc)
    gens = {t.name: table_wise(rank=0, compute_kernel="fused") for t in tables}
    plan = ShardingPlan({"": construct_module_sharding_plan(ebc, gens, local_size=1, world_size=1, device_type="cpu")})
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    dmp = DistributedModelParallel(ebc, env=env, device=torch.device("cpu"), plan=plan,
                                   sharders=[EmbeddingBagCollectionSharder()])
    kjt = global_batch(tables, 1, 4, weighted=False, seed=3)[0]
    with torch.no_grad():
        for t in tables:  # the unsharded reference with FP16-rounded tables
            w = reference.embedding_bags[t.name].weight
            w.copy_(w.half().float())

    utils = EmbeddingQuantizationUtils()
    utils.quantize_embedding_modules(dmp, DataType.FP16)
    with torch.no_grad():
        out = dmp(kjt).wait()
    torch.testing.assert_close(out.values(), reference(kjt).values().detach(), rtol=1e-3, atol=1e-3)  # fp16 output
    params = dict(dmp.named_parameters())  # views follow the converted buffers (no read of freed memory)
    assert {p.dtype for k, p in params.items() if "embedding_bags" in k} == {torch.float16}
    utils.recreate_embedding_modules(dmp)
    state = dmp.state_dict()
    for t in tables:
        key = [k for k in state if k.endswith(f"embedding_bags.{t.name}.weight")][0]
        local = state[key].local_shards()[0].tensor  # table-wise on the only rank: the whole table
        assert local.dtype == torch.float32
        torch.testing.assert_close(local, reference.embedding_bags[t.name].weight.detach(), rtol=0, atol=0)
    params = dict(dmp.named_parameters())
    for t in tables:
        key = [k for k in params if k.endswith(f"embedding_bags.{t.name}.weight")][0]
        torch.testing.assert_close(params[key].detach(), reference.embedding_bags[t.name].weight.detach(),
                                   rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(dmp(kjt).wait().values(), reference(kjt).values())
    with pytest.raises(ValueError, match="was not converted"):
        EmbeddingQuantizationUtils().recreate_embedding_modules(dmp)
    return "ok"


@pytest.mark.dist
def test_fp16_round_trip_matches_rounded_reference():
    assert run_multiprocess(_round_trip, 1) == ["ok"]
