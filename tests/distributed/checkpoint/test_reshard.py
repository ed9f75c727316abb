"""Checkpoints written with plain ``torch.distributed.checkpoint`` under one plan and world size, read under
another: weights, fused and dense optimizer state restored, so the next step equals the uninterrupted job's.

One 2-rank spawn runs every 2-rank case; one 1-rank spawn reads the checkpoints it left (M=1, unsharded)."""

import os
from typing import Any, Dict, List

import pytest
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp

from recsys_lib.distributed._checkpoint.gather import full_tensors, state_dict_gather
from recsys_lib.distributed._checkpoint.rowwise_state import owner_pieces
from recsys_lib.distributed.test_utils import run_multiprocess
from tests.distributed.checkpoint._ckpt_models import SparseDense, build, check_model, load, state, train_step
from torch.distributed._shard.metadata import ShardMetadata

STEPS = 2  # steps before the checkpoint; the checked step is STEPS

# name: (save plan, load plan, fused optimizer, sequence (EC) model, async save)
CASES = {
    "tw_to_rw": (["tw0", "tw1", "tw0", "tw1"], ["rw", "rw", "rw", "rw"], "rowwise", False, False),
    "rw_to_tw": (["rw", "rw", "rw", "rw"], ["tw1", "tw0", "tw1", "tw0"], "rowwise", False, True),
    "cw_to_rw": (["cw", "cw", "cw", "cw"], ["rw", "rw", "tw0", "rw"], "adagrad", False, False),
    "mixed_to_twrw_grid": (["tw0", "rw", "cw", "twrw"], ["twrw", "grid", "tw1", "cw0"], "adagrad", False, False),
    "dp_to_tw": (["dp", "tw0", "dp", "rw"], ["tw1", "dp", "tw0", "dp"], "sgd", False, False),
    "ec_tw_to_rw": (["tw0", "tw1", "rw", "tw0"], ["rw", "rw", "tw0", "tw1"], "rowwise", True, False),
}


def _run_case(root: str, name: str) -> Dict[str, Dict[str, torch.Tensor]]:
    save_plan, load_plan, optimizer, sequence, use_async = CASES[name]
    ws = dist.get_world_size()
    path = os.path.join(root, name)
    dmp, opt = build(save_plan, ws, optimizer, seed=1, sequence=sequence)
    for s in range(STEPS):
        train_step(dmp, opt, s, sequence)
    if use_async:
        from recsys_lib.distributed._checkpoint.staging import ShardedTensorStager

        save_group = dist.new_group(backend="gloo")  # the background write must not share training's group
        future = dcp.async_save(state(dmp, opt), checkpoint_id=path, async_stager=ShardedTensorStager(),
                                process_group=save_group)
        train_step(dmp, opt, STEPS, sequence)  # changes the live values while the checkpoint is written
        future.result()
        dmp, opt = build(save_plan, ws, optimizer, seed=1, sequence=sequence)  # replay to the checkpoint
        for s in range(STEPS):
            train_step(dmp, opt, s, sequence)
    else:
        dcp.save(state(dmp, opt), checkpoint_id=path)
    saved = full_tensors(dmp.state_dict())
    train_step(dmp, opt, STEPS, sequence)
    expected = full_tensors(dmp.state_dict())
    # A different initialisation, then the checkpoint: the next step must match the uninterrupted one.
    dmp2, opt2 = build(load_plan, ws, optimizer, seed=2, sequence=sequence)
    sd = state(dmp2, opt2)
    dcp.load(sd, checkpoint_id=path)
    load(dmp2, opt2, sd)
    check_model(dmp2, saved, f"{name} loaded")
    train_step(dmp2, opt2, STEPS, sequence)
    check_model(dmp2, expected, f"{name} next step")
    return {"saved": saved, "expected": expected}


def _cw_rowwise_case(root: str) -> Dict[str, Any]:
    """Row-wise state of a column-split table: under the same plan every column shard gets its own value back
    exactly; under a plan without that split, the width-weighted mean (both directions)."""
    from torch.distributed.checkpoint import DefaultLoadPlanner

    from recsys_lib.distributed._sharded.common import kernels_of

    ws = dist.get_world_size()
    widths_plan = ["cw", "cw", "rw", "cw"]
    dmp, opt = build(widths_plan, ws, "rowwise", seed=1)
    for s in range(STEPS):
        train_step(dmp, opt, s)
    path = os.path.join(root, "cw_rowwise")
    dcp.save(state(dmp, opt), checkpoint_id=path)
    # The references: each column shard's own kernel state, and their width-weighted mean summed over ranks.
    dims = {c.name: c.embedding_dim for c in dmp.module.sparse._embedding_bag_configs}
    ref = {t: torch.zeros(c.num_embeddings, dtype=torch.float64) for t, c in
           ((c.name, c) for c in dmp.module.sparse._embedding_bag_configs)}
    own = {}
    for k in kernels_of(dmp.module.sparse._lookups):
        for table, st in zip(k.config.embedding_tables, k.emb_module.split_optimizer_states()):
            md = table.local_metadata
            (r0, c0), (nr, nc) = md.shard_offsets, md.shard_sizes
            ref[table.name][r0:r0 + nr] += st[0].double() * nc / dims[table.name]
            own[(table.name, r0, c0)] = st[0].clone()
    for v in ref.values():
        dist.all_reduce(v)
    out = {"shards_differ_from_mean": any(
        not torch.allclose(v, ref[t][r0:r0 + v.numel()].float()) for (t, r0, _), v in own.items() if t != "t2")}
    for load_plan in (["rw", "tw0", "cw", "tw1"], widths_plan):
        dmp2, opt2 = build(load_plan, ws, "rowwise", seed=2)
        sd = state(dmp2, opt2)
        # t2 was not split by columns when saved: its per-column key is absent (allowed explicitly).
        dcp.load(sd, checkpoint_id=path, planner=DefaultLoadPlanner(allow_partial_load=load_plan != widths_plan))
        load(dmp2, opt2, sd)
        for k in kernels_of(dmp2.module.sparse._lookups):
            for table, st in zip(k.config.embedding_tables, k.emb_module.split_optimizer_states()):
                (r0, c0), nr = table.local_metadata.shard_offsets, table.local_metadata.shard_sizes[0]
                what = f"{load_plan} {table.name} at {[r0, c0]}"
                if load_plan == widths_plan:  # the same plan: each shard's own value, bit for bit
                    assert torch.equal(st[0], own[(table.name, r0, c0)]), what
                else:
                    torch.testing.assert_close(st[0], ref[table.name][r0:r0 + nr].float(), msg=lambda m: f"{what}: {m}")
        out[str(load_plan)] = True
    return out


def _two_rank_cases(rank: int, world_size: int, root: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {name: _run_case(root, name) for name in CASES}
    out["cw_rowwise"] = _cw_rowwise_case(root)
    # The unsharded model's weights at the "mixed" checkpoint, for the world-size-1 readers.
    dmp, _ = build(CASES["mixed_to_twrw_grid"][0], world_size, "adagrad", seed=1)
    dense = {k: torch.zeros(v.size()) for k, v in dmp.state_dict().items()}
    state_dict_gather(dmp.state_dict(), dense)
    full = full_tensors(dmp.state_dict())  # collective: every rank
    out["gather_matches"] = all(torch.equal(dense[k], v) for k, v in full.items()) if rank == 0 else True
    return out


def _one_rank_cases(rank: int, world_size: int, root: str, values: Dict[str, Dict[str, torch.Tensor]]) -> bool:
    # M=1: the mixed-plan checkpoint into a table-wise plan on one rank, then the same step on the whole batch.
    save_plan, _, optimizer, _, _ = CASES["mixed_to_twrw_grid"]
    dmp, opt = build(["tw0", "tw0", "tw0", "tw0"], 1, optimizer, seed=3)
    sd = state(dmp, opt)
    dcp.load(sd, checkpoint_id=os.path.join(root, "mixed_to_twrw_grid"))
    load(dmp, opt, sd)
    train_step(dmp, opt, STEPS)
    check_model(dmp, values["expected"], "mixed -> tw at world size 1")
    # Into the unsharded model: plain tensors come back whole.
    torch.manual_seed(4)
    plain = SparseDense(False, torch.device("cpu"))
    msd = {"model": plain.state_dict()}
    dcp.load(msd, checkpoint_id=os.path.join(root, "mixed_to_twrw_grid"))
    plain.load_state_dict(msd["model"])
    for k, v in plain.state_dict().items():
        torch.testing.assert_close(v, values["saved"][k], msg=lambda m: f"unsharded {k}: {m}")
    return True


@pytest.mark.dist
def test_reshard_matrix_two_ranks_then_one(tmp_path) -> None:
    root = str(tmp_path)
    results = run_multiprocess(_two_rank_cases, 2, root=root, timeout_s=240)
    assert all(r["cw_rowwise"] for r in results) and results[0]["gather_matches"]
    assert any(r["cw_rowwise"]["shards_differ_from_mean"] for r in results)  # the exact check is not vacuous
    assert run_multiprocess(_one_rank_cases, 1, root=root, values=results[0]["mixed_to_twrw_grid"])[0]


def test_owner_pieces_cover_rows_once() -> None:
    # Two row blocks, each split into three column shards; then a table with uneven row blocks per column.
    shards = [ShardMetadata([r, c], [5, 4], f"rank:{i}/cpu") for i, (r, c) in
              enumerate([(0, 0), (0, 4), (0, 8), (5, 0), (5, 4), (5, 8)])]
    pieces = owner_pieces(shards)
    assert pieces == [(0, 0, 2), (1, 2, 2), (2, 4, 1), (3, 5, 2), (4, 7, 2), (5, 9, 1)]
    uneven = [ShardMetadata([0, 0], [6, 4], "rank:0/cpu"), ShardMetadata([0, 4], [3, 4], "rank:1/cpu"),
              ShardMetadata([3, 4], [3, 4], "rank:2/cpu")]
    pieces = owner_pieces(uneven)
    covered: List[int] = []
    for i, a, n in pieces:
        md = uneven[i]
        assert md.shard_offsets[0] <= a and a + n <= md.shard_offsets[0] + md.shard_sizes[0]
        covered += list(range(a, a + n))
    assert covered == list(range(6))
