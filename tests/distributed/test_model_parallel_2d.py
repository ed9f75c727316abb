"""``DMPCollection`` (2-D parallel) on 4 gloo ranks: 2 sharding groups x 2 replicas.

* Synced after every step with plain SGD, the 2-D model's tables and dense part equal a 1-D
  ``DistributedModelParallel`` over the same 4 ranks (independent reference: the 1-D model on the same batches).
* Its state dict and fused optimizer state save with plain DCP and load into a fresh 2-D model and into a
  1-D model under another plan, value for value.
"""

import os
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed._checkpoint.gather import full_tensors, state_dict_gather
from recsys_lib.distributed.comm import intra_and_cross_node_pg_2D
from recsys_lib.distributed.embeddingbag import EmbeddingBagCollectionSharder
from recsys_lib.distributed.model_parallel import DMPCollection
from recsys_lib.distributed.sharding_plan import construct_module_sharding_plan
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import ShardingEnv2D, ShardingPlan
from recsys_lib.optim.keyed import KeyedOptimizerWrapper
from tests.distributed._sharding_helpers import check_local_shards
from tests.distributed.checkpoint._ckpt_models import GENERATORS, LR, OPTIMIZERS, SparseDense, batch, build

W, G = 4, 2
PLAN_2D = ["tw0", "dp", "cw", "twrw"]  # for the 2-rank sharding group (TWRW: the 2-D intra/cross groups)
PLAN_1D = ["tw1", "rw", "tw0", "dp"]  # another plan for the 4-rank reference


def build_2d(optimizer: str, seed: int) -> Any:
    torch.manual_seed(seed)
    model = SparseDense(False, torch.device("cpu"))
    sharder = EmbeddingBagCollectionSharder(
        fused_params={"optimizer": OPTIMIZERS[optimizer], "learning_rate": LR, "eps": 1e-8})
    gens = {f"t{i}": GENERATORS[name](G) for i, name in enumerate(PLAN_2D)}
    mplan = construct_module_sharding_plan(model.sparse, gens, sharder=sharder, world_size=G, local_size=G,
                                           device_type="cpu")
    dmp = DMPCollection(model, torch.device("cpu"), ShardingPlan({"sparse": mplan}), world_size=W,
                        sharding_group_size=G, global_pg=dist.group.WORLD, sharders=[sharder])
    fused = set(dmp.fused_optimizer.params)
    dense = {k: p for k, p in dmp.named_parameters() if k not in fused}
    opt = KeyedOptimizerWrapper(dense, lambda ps: torch.optim.SGD(ps, lr=LR))
    return dmp, opt


def step(dmp: Any, opt: Any, s: int) -> None:
    opt.zero_grad()
    dmp.fused_optimizer.zero_grad()
    dmp(batch(s, dist.get_rank(), W, data_world=W)).backward()
    opt.step()
    dmp.fused_optimizer.step()


def check_pieces(value: Any, full: torch.Tensor, what: str) -> None:
    """Every local shard of ``value`` (any rank of tensor) equals the slice of ``full`` at its offsets."""
    if not isinstance(value, ShardedTensor):
        torch.testing.assert_close(value, full, msg=lambda m: f"{what}: {m}")
        return
    assert list(value.size()) == list(full.shape), what
    for sh in value.local_shards():
        piece = full[tuple(slice(o, o + n) for o, n in zip(sh.metadata.shard_offsets, sh.metadata.shard_sizes))]
        torch.testing.assert_close(sh.tensor, piece, msg=lambda m: f"{what}: {m}")


def flat_optim(sd: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for per_param in sd["state"].values() for k, v in per_param.items()}


def _layout_and_env(dmp: Any) -> Dict[str, Any]:
    rank = dist.get_rank()
    env = dmp._env
    assert isinstance(env, ShardingEnv2D)
    # Sharding groups [0, 2] and [1, 3]: group rank = rank // 2; replicas [0, 1], [2, 3].
    assert (env.world_size, env.rank, env.global_world_size, env.global_rank) == (2, rank // 2, 4, rank)
    assert dist.get_process_group_ranks(env.sharding_pg) == [rank % 2, rank % 2 + 2]
    assert dist.get_process_group_ranks(env.replica_pg) == [rank - rank % 2, rank - rank % 2 + 1]
    assert env.num_sharding_groups() == 2
    # The plan names this group's global ranks: t0 (table-wise on group rank 0) lives on rank 0 or rank 1.
    t0 = dmp.plan.plan["sparse"]["t0"]
    assert t0.ranks == [rank % 2] and t0.sharding_spec.shards[0].placement.rank() == rank % 2
    w = dmp.state_dict()["sparse.embedding_bags.t2.weight"]  # column-wise over the group
    assert isinstance(w, ShardedTensor)
    assert sorted(md.placement.rank() for md in w.metadata().shards_metadata) == [rank % 2, rank % 2 + 2]
    intra, cross = intra_and_cross_node_pg_2D(env)  # node group = sharding group (LOCAL_WORLD_SIZE=2 ... 4)
    return {"intra": dist.get_process_group_ranks(intra), "cross": dist.get_process_group_ranks(cross)}


def _two_d(rank: int, world_size: int, root: str) -> Dict[str, Any]:
    from tests.distributed.checkpoint._ckpt_models import state  # noqa: F401  (DCP layout helper)

    # 1. synced every step with SGD == the 1-D model on the same 4 ranks.
    ref, ref_opt = build(PLAN_1D, W, "sgd", seed=1)
    two, two_opt = build_2d("sgd", seed=1)
    out = _layout_and_env(two)
    for s in range(3):
        step(ref, ref_opt, s)
        step(two, two_opt, s)
        two.sync()
    full = full_tensors(ref.state_dict())
    sd = two.state_dict()
    assert sorted(sd) == sorted(full)
    for k, v in sd.items():
        check_local_shards(v, full[k], f"2-D vs 1-D {k}")
    # Without sync the replicas drift apart (the check above is not vacuous).
    step(two, two_opt, 3)
    replicas = two._env.replica_pg  # the replica of this rank's t3 shard has the same shape

    def replica_values() -> List[torch.Tensor]:
        mine = two.state_dict()["sparse.embedding_bags.t3.weight"].local_shards()[0].tensor.clone()
        both = [torch.zeros_like(mine) for _ in range(2)]
        dist.all_gather(both, mine, group=replicas)
        return both

    a, b = replica_values()
    out["drift"] = not torch.equal(a, b)
    calls = []

    def hook(tensors: List[torch.Tensor]) -> None:  # a user's all-reduce: average over the replica group
        calls.append(len(tensors))
        for t in tensors:
            dist.all_reduce(t, group=replicas)
            t.div_(2)

    two.set_all_reduce_hook(hook)
    two.sync()
    a, b = replica_values()
    out["synced"] = torch.equal(a, b) and len(calls) > 0

    # 2. DCP: a row-wise Adagrad 2-D model saved, loaded into a fresh 2-D model and into a 1-D model.
    two, two_opt = build_2d("rowwise", seed=1)
    for s in range(2):
        step(two, two_opt, s)
        two.sync()
    path = os.path.join(root, "two_d")
    dcp.save({"model": two.state_dict(), "optim": two.fused_optimizer.state_dict()}, checkpoint_id=path)
    one, _ = build(["rw", "dp", "rw", "rw"], W, "rowwise", seed=5)  # every rank holds a piece of every state
    target = {"model": one.state_dict(), "optim": one.fused_optimizer.state_dict()}
    dcp.load(target, checkpoint_id=path)
    one.load_state_dict(target["model"])
    one.fused_optimizer.load_state_dict(target["optim"])
    full_model = full_tensors(one.state_dict())
    full_optim = full_tensors(flat_optim(one.fused_optimizer.state_dict()))
    fresh, _ = build_2d("rowwise", seed=7)
    target = {"model": fresh.state_dict(), "optim": fresh.fused_optimizer.state_dict()}
    dcp.load(target, checkpoint_id=path)
    fresh.load_state_dict(target["model"])
    fresh.fused_optimizer.load_state_dict(target["optim"])
    for name, model in (("saved", two), ("reloaded 2-D", fresh)):
        for k, v in model.state_dict().items():
            check_local_shards(v, full_model[k], f"{name} {k}")
        for k, v in flat_optim(model.fused_optimizer.state_dict()).items():
            if k.endswith("_by_column"):  # the column-split table's per-column form (t2): not in the 1-D plan
                continue
            check_pieces(v, full_optim[k], f"{name} optimizer {k}")
    out["optim_keys"] = sorted(full_optim)
    # Unsharded for serving: each sharding group gathers to its first rank (rank 0 holds the dense dict).
    dense = {k: torch.zeros(v.shape) for k, v in full_model.items()}
    state_dict_gather(two.state_dict(), dense)
    if rank == 0:
        for k, v in dense.items():
            torch.testing.assert_close(v, full_model[k], msg=lambda m: f"state_dict_gather {k}: {m}")
    return out


@pytest.mark.dist
def test_dmp_collection_2x2(tmp_path) -> None:
    results = run_multiprocess(_two_d, W, root=str(tmp_path), local_world_size=2, timeout_s=300)
    assert all(r["drift"] and r["synced"] for r in results)
    assert results[0]["optim_keys"]  # row-wise Adagrad states were compared
    # LOCAL_WORLD_SIZE=2 = the sharding group size: intra = the whole group, cross = the rank alone.
    assert results[0]["intra"] == [0, 2] and results[0]["cross"] == [0]
    assert results[3]["intra"] == [1, 3] and results[3]["cross"] == [3]


def test_rank_layout_and_plan_remap_are_pure() -> None:
    from torch.distributed._shard.metadata import ShardMetadata
    from torch.distributed._shard.sharding_spec import EnumerableShardingSpec

    from recsys_lib.distributed._parallel2d.groups import intra_and_cross_groups, peer_matrix, remap_plan
    from recsys_lib.distributed.types import ParameterSharding

    assert peer_matrix(8, 4) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert peer_matrix(8, 4, use_inter_host_allreduce=True) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert intra_and_cross_groups(8, 4, 2, False) == ([[0, 2], [4, 6], [1, 3], [5, 7]], [[0, 4], [2, 6], [1, 5], [3, 7]])
    with pytest.raises(ValueError, match="divide"):
        peer_matrix(6, 4)
    shards = [ShardMetadata([0, 0], [4, 2], "rank:0/cpu"), ShardMetadata([0, 2], [4, 2], "rank:1/cpu")]
    ps = ParameterSharding("column_wise", "fused", ranks=[0, 1], sharding_spec=EnumerableShardingSpec(shards))
    plan = ShardingPlan({"sparse": {"t": ps}})
    remap_plan(plan, 5, peer_matrix(8, 4), "cpu")  # rank 5 is in sharding group [1, 3, 5, 7]
    assert ps.ranks == [1, 3]
    assert [str(md.placement) for md in ps.sharding_spec.shards] == ["rank:1/cpu", "rank:3/cpu"]
