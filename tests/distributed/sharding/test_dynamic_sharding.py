"""Dynamic resharding: ``DistributedModelParallel.reshard`` moves tables between ranks and sharding types in the
middle of training (2 gloo ranks); weights and fused optimizer state move with them, and the following steps
equal those of the same job run without resharding. The plan-delta helpers are pure and tested alone."""

from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
from torch.distributed._shard.sharded_tensor import ShardedTensor

from recsys_lib.distributed.sharding.dynamic_sharding import (
    output_sharding_plan_delta_single,
    output_sharding_plans_delta,
)
from recsys_lib.distributed._reshard.moves import Move, plan_moves
from recsys_lib.distributed.sharding_plan import column_wise, construct_module_sharding_plan, row_wise, table_wise
from recsys_lib.distributed.test_utils import run_multiprocess
from recsys_lib.distributed.types import EmbeddingModuleShardingPlan
from recsys_lib.modules.embedding_configs import PoolingType
from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
from tests.distributed._sharding_helpers import ebc_tables
from tests.distributed.checkpoint._ckpt_models import build, train_step

PLAN_A = ["tw0", "tw1", "rw", "cw"]


def _plan_b(ws: int) -> Dict[str, Any]:
    # t0: TW rank 0 -> rank 1; t1: TW -> RW; t2: RW -> TW; t3: CW [0, 1] -> CW [1, 0].
    return {"t0": table_wise(rank=1, compute_kernel="fused"), "t1": row_wise(compute_kernel="fused"),
            "t2": table_wise(rank=0, compute_kernel="fused"), "t3": column_wise(ranks=[1, 0], compute_kernel="fused")}


def full_values(values: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """Every value whole on every rank (ShardedTensors assembled from all ranks' local shards; keys may differ
    per rank)."""
    mine = {}
    for k, v in values.items():
        if isinstance(v, ShardedTensor):
            mine[k] = (list(v.size()), [(list(s.metadata.shard_offsets), s.tensor.detach().clone()) for s in v.local_shards()])
        else:
            mine[k] = (list(v.shape), [([0] * v.dim(), v.detach().clone())])
    everyone: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    out: Dict[str, torch.Tensor] = {}
    for per_rank in everyone:
        for k, (size, pieces) in per_rank.items():
            full = out.setdefault(k, torch.zeros(size))
            for offsets, t in pieces:
                full[tuple(slice(o, o + n) for o, n in zip(offsets, t.shape))] = t
    return out


def snapshot(dmp: Any) -> Dict[str, torch.Tensor]:
    opt = {f"{p}/{k}": v for p, s in dmp.fused_optimizer.state_dict()["state"].items() for k, v in s.items()
           if not k.endswith("_by_column")}
    return {**full_values(dmp.state_dict()), **full_values(opt)}


def _reshard_mid_training(rank: int, world_size: int) -> Dict[str, Any]:
    ref, ref_opt = build(PLAN_A, world_size, "rowwise", seed=1)
    dmp, opt = build(PLAN_A, world_size, "rowwise", seed=1)
    for s in range(2):
        train_step(ref, ref_opt, s)
        train_step(dmp, opt, s)
    before = snapshot(dmp)
    ebc = dmp.module.sparse
    old_plan = EmbeddingModuleShardingPlan(dict(dmp.plan.plan["sparse"]))
    new_plan = construct_module_sharding_plan(
        EmbeddingBagCollection(ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 16)), device=torch.device("meta")),
        _plan_b(world_size), world_size=world_size, local_size=world_size, device_type="cpu")
    delta = output_sharding_plans_delta({"sparse": old_plan}, {"sparse": new_plan}, return_data_volume=True)
    volume = dmp.reshard(delta)
    assert volume == delta["sparse"][0] > 0
    out: Dict[str, Any] = {"moved_tables": sorted(delta["sparse"][1])}
    # The new placements are live: t0 is on rank 1 now, and the state is unchanged by the move.
    t0 = dmp.state_dict()["sparse.embedding_bags.t0.weight"]
    out["t0_ranks"] = sorted(md.placement.rank() for md in t0.metadata().shards_metadata)
    assert dmp.plan.plan["sparse"]["t0"].ranks == [1]
    moved = snapshot(dmp)
    assert sorted(moved) == sorted(before)
    for k in before:
        torch.testing.assert_close(moved[k], before[k], rtol=0, atol=0, msg=lambda m: f"after the move {k}: {m}")
    # The next steps equal the unresharded job's.
    for s in range(2, 4):
        train_step(ref, ref_opt, s)
        train_step(dmp, opt, s)
        got, want = snapshot(dmp), snapshot(ref)
        for k in want:
            torch.testing.assert_close(got[k], want[k], msg=lambda m: f"step {s} {k}: {m}")
    return out


@pytest.mark.dist
def test_reshard_mid_training_two_ranks() -> None:
    results = run_multiprocess(_reshard_mid_training, 2, timeout_s=240)
    assert results[0]["moved_tables"] == ["t0", "t1", "t2", "t3"]
    assert results[0]["t0_ranks"] == [1]


def test_plan_delta_keeps_tables_whose_ranks_change() -> None:
    ebc = EmbeddingBagCollection(ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 16)), device=torch.device("meta"))
    old = construct_module_sharding_plan(ebc, {f"t{i}": table_wise(rank=i % 2) for i in range(4)}, world_size=2,
                                         local_size=2, device_type="cpu")
    new = construct_module_sharding_plan(ebc, {"t0": table_wise(rank=0), "t1": table_wise(rank=0),
                                               "t2": table_wise(rank=1), "t3": table_wise(rank=1)},
                                         world_size=2, local_size=2, device_type="cpu")
    volume, delta = output_sharding_plan_delta_single(old, new, return_data_volume=True)
    assert sorted(delta) == ["t1", "t2"]
    assert delta["t1"].ranks == [0] and delta["t1"] is not new["t1"]  # a copy
    rows_dims = {t.name: (t.num_embeddings, t.embedding_dim) for t in ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 16))}
    assert volume == pytest.approx(sum(r * d * 4 for r, d in (rows_dims["t1"], rows_dims["t2"])) / 2 ** 20)
    with pytest.raises(ValueError, match="different tables"):
        output_sharding_plan_delta_single(old, EmbeddingModuleShardingPlan({"t0": new["t0"]}))


def test_plan_moves_pairs_every_overlap() -> None:
    # t (10 x 8): TW on rank 0 -> RW over [0, 1] (rows 0-4 stay, 5-9 go to rank 1).
    old = ((10, 8), [((0, 0), (10, 8), 0)])
    new = ((10, 8), [((0, 0), (5, 8), 0), ((5, 0), (5, 8), 1)])
    assert plan_moves(old, new, 2) == [Move(0, 0, (0, 0), (5, 8)), Move(0, 1, (5, 0), (5, 8))]
    # CW halves swap ranks; a replicated (data-parallel) source is copied locally on every rank.
    old = ((4, 8), [((0, 0), (4, 4), 0), ((0, 4), (4, 4), 1)])
    new = ((4, 8), [((0, 0), (4, 4), 1), ((0, 4), (4, 4), 0)])
    assert plan_moves(old, new, 2) == [Move(0, 1, (0, 0), (4, 4)), Move(1, 0, (0, 4), (4, 4))]
    replicated = ((4, 8), [((0, 0), (4, 8), -1)])
    assert plan_moves(replicated, new, 2) == [Move(1, 1, (0, 0), (4, 4)), Move(0, 0, (0, 4), (4, 4))]
    # To data parallel: every rank receives every piece.
    assert plan_moves(old, replicated, 2) == [Move(0, 0, (0, 0), (4, 4)), Move(0, 1, (0, 0), (4, 4)),
                                              Move(1, 0, (0, 4), (4, 4)), Move(1, 1, (0, 4), (4, 4))]
    with pytest.raises(ValueError, match="cannot become"):
        plan_moves(old, ((4, 4), []), 2)


def test_update_module_sharding_plan_moves_infos_between_types() -> None:
    from types import SimpleNamespace

    from recsys_lib.distributed.embedding_sharding import EmbeddingShardingInfo
    from recsys_lib.distributed.sharding.dynamic_sharding import update_module_sharding_plan

    ebc = EmbeddingBagCollection(ebc_tables(PoolingType.SUM, dims=(8, 16, 8, 16)), device=torch.device("meta"))
    configs = {c.name: c for c in ebc.embedding_bag_configs()}
    old = construct_module_sharding_plan(ebc, {f"t{i}": table_wise(rank=0) for i in range(4)}, world_size=2,
                                         local_size=2, device_type="cpu")
    new = construct_module_sharding_plan(ebc, {"t0": table_wise(rank=1), "t1": row_wise(), "t2": table_wise(rank=0),
                                               "t3": table_wise(rank=0)}, world_size=2, local_size=2, device_type="cpu")
    module = SimpleNamespace(_table_name_to_parameter_sharding=dict(old))
    infos = {"table_wise": [EmbeddingShardingInfo(configs[t], old[t], torch.empty(0)) for t in sorted(configs)]}
    _, delta = output_sharding_plan_delta_single(old, new)
    update_module_sharding_plan(module, dict(delta), infos)
    assert module._table_name_to_parameter_sharding["t0"].ranks == [1]
    assert module._table_name_to_parameter_sharding["t1"] is delta["t1"]
    assert [i.embedding_config.name for i in infos["table_wise"]] == ["t0", "t2", "t3"]
    assert [i.embedding_config.name for i in infos["row_wise"]] == ["t1"]
    assert infos["table_wise"][0].param_sharding.ranks == [1]
