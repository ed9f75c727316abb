"""``TestSparseNN`` sharded by ``DistributedModelParallel`` (gloo, W=2) against its unsharded twin.

One spawn; per sharding type offered by the test sharders (table-wise, row-wise; fused EXACT_SGD kernel) the
sharded model's predictions and loss on each rank's ``ModelInput`` equal the unsharded model's on the global
batch, and after one training step (fused SGD on the tables inside backward, plain SGD on the dense part) every
parameter and local table shard equals one SGD step of the unsharded model on the global mean loss.
"""

import copy
from typing import Any

import torch
import torch.distributed as dist

from recsys_lib.distributed.model_parallel import DistributedModelParallel
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.test_utils.emb_sharder import TestEBCSharder
from recsys_lib.distributed.test_utils.test_model import ModelInput, TestSparseNN
from recsys_lib.distributed.types import ShardingEnv
from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from recsys_lib.optim.optimizers import in_backward_optimizer_filter
from tests.distributed._sharding_helpers import check_local_shards

LR = 0.5
B, NF = 3, 6


def _tables():
    dims, rows, feats = [4, 8, 4, 12], [11, 23, 7, 17], [["a"], ["b", "c"], ["d"], ["e"]]
    tables = [EmbeddingBagConfig(num_embeddings=r, embedding_dim=d, name=f"t{i}", feature_names=f)
              for i, (d, r, f) in enumerate(zip(dims, rows, feats))]
    weighted = [EmbeddingBagConfig(num_embeddings=13, embedding_dim=4, name="w0", feature_names=["wa", "wb"])]
    return tables, weighted


def _check(rank: int, world: int, sharding_type: str) -> None:
    from fbgemm_gpu.split_embedding_configs import EmbOptimType

    tables, weighted = _tables()
    torch.manual_seed(7)
    model = TestSparseNN(tables=tables, num_float_features=NF, weighted_tables=weighted)
    ref = copy.deepcopy(model)
    sharder = TestEBCSharder(sharding_type, "fused", {"optimizer": EmbOptimType.EXACT_SGD, "learning_rate": LR})
    env = ShardingEnv.from_process_group(dist.group.WORLD)
    dmp = DistributedModelParallel(model, env=env, device=torch.device("cpu"), sharders=[sharder])
    plan = dmp.plan.plan
    assert {ps.sharding_type for mp in plan.values() for ps in mp.values()} == {sharding_type}, plan
    assert set(plan) == {"sparse.ebc", "sparse.weighted_ebc"}

    glob, local = ModelInput.generate(batch_size=B, world_size=world, num_float_features=NF, tables=tables,
                                      weighted_tables=weighted, pooling_avg=3, random_seed=11)
    dense_opt = KeyedOptimizerWrapper(dict(in_backward_optimizer_filter(dmp.named_parameters())),
                                      lambda ps: torch.optim.SGD(ps, lr=LR))
    loss, pred = dmp(local[rank])
    ref_loss, ref_pred = ref(glob)
    mine = slice(rank * B, (rank + 1) * B)
    torch.testing.assert_close(pred, ref_pred[mine], msg=lambda m: f"{sharding_type} pred: {m}")
    loss.backward()
    dense_opt.step()
    # each rank's loss is the mean over its B samples; the global mean is their average (DDP and the sharded
    # output dist both average gradients over ranks)
    torch.testing.assert_close(loss.detach(), torch.nn.functional.binary_cross_entropy_with_logits(
        ref_pred[mine].detach(), glob.label[mine]))
    ref_loss.backward()
    with torch.no_grad():
        for p in ref.parameters():
            if p.grad is not None:
                p -= LR * p.grad
    state = dmp.state_dict()
    ref_state = ref.state_dict()
    assert list(state) == list(ref_state)
    for name, want in ref_state.items():
        check_local_shards(state[name], want, f"{sharding_type} {name}")

    # the stepped models still agree (eval mode: predictions only)
    dmp.eval()
    ref.eval()
    with torch.no_grad():
        torch.testing.assert_close(dmp(local[rank]), ref(glob)[mine], msg=lambda m: f"{sharding_type} after step: {m}")


def _all(rank: int, world: int) -> Any:
    for sharding_type in ("table_wise", "row_wise"):
        _check(rank, world, sharding_type)
    return rank


def test_sparse_nn_sharded_tw_rw_matches_unsharded_world_2() -> None:
    assert run_multiprocess(_all, 2, timeout_s=300) == [0, 1]
