"""examples/dlrm/train.py (the plain-loop example, DMP + planner), one process and under torchrun with 2 gloo ranks."""

import math
import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

from recsys_lib import EmbeddingBagCollection, EmbeddingBagConfig
from recsys_lib.datasets.criteo import DEFAULT_CAT_NAMES, DEFAULT_INT_NAMES
from recsys_lib.models.dlrm import DLRM, DLRMTrain

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "dlrm" / "train.py"
TABLE_KEY = "model.sparse_arch.embedding_bag_collection.embedding_bags.t_{}.weight"
ROWS, DIM = 1_000, 8


def _run(cmd, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    sizes = ["--num_embeddings", str(ROWS), "--embedding_dim", str(DIM), "--dense_arch_layer_sizes", "64", str(DIM)]
    out = subprocess.run(cmd + sizes + ["--out_dir", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    ckpt = tmp_path / "dlrm_random.pt"
    assert ckpt.exists() and not (tmp_path / "dlrm_random.pt.tmp").exists()
    first, last = map(float, re.search(r"loss\s+first (\S+)\s+last (\S+)", out.stdout).groups())
    assert math.isfinite(first) and math.isfinite(last), out.stdout
    return out.stdout, torch.load(ckpt)


def _check_unsharded_checkpoint(state):
    # TorchRec's DLRM state-dict layout, wrapped by DLRMTrain as `model.`, with whole (gathered) tables.
    assert state[TABLE_KEY.format("cat_0")].shape == (ROWS, DIM)
    assert "model.over_arch.model.1.weight" in state
    plain = DLRMTrain(DLRM(
        embedding_bag_collection=EmbeddingBagCollection(tables=[
            EmbeddingBagConfig(name=f"t_{n}", embedding_dim=DIM, num_embeddings=ROWS, feature_names=[n])
            for n in DEFAULT_CAT_NAMES
        ]),
        dense_in_features=len(DEFAULT_INT_NAMES), dense_arch_layer_sizes=[64, DIM], over_arch_layer_sizes=[64, 32, 1],
    ))
    plain.load_state_dict(state)  # strict: same keys and shapes as an unsharded model
    for name in DEFAULT_CAT_NAMES:
        w = state[TABLE_KEY.format(name)]
        assert torch.isfinite(w).all()
        # Tables start uniform in +-1/sqrt(rows); the fused RowWiseAdagrad moved the looked-up rows beyond it,
        # the rows no batch touched kept their initial values.
        outside = (w.abs() > 1 / math.sqrt(ROWS) + 1e-6).any(dim=1)
        assert 0 < int(outside.sum()) < ROWS // 2, name


def test_single_process_run_writes_an_unsharded_checkpoint(tmp_path):
    stdout, state = _run([sys.executable, str(SCRIPT), "--num_batches", "3", "--batch_size", "32"], tmp_path)
    assert "throughput" in stdout and "1 process(es)" in stdout
    _check_unsharded_checkpoint(state)


@pytest.mark.slow
def test_torchrun_two_processes_shards_tables(tmp_path):
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    stdout, state = _run([str(torchrun), "--nproc_per_node=2", str(SCRIPT), "--num_batches", "4", "--batch_size", "32"],
                         tmp_path)
    assert "2 process(es)" in stdout
    # The printed plan: some table lives on rank 1 only (table/column/row-wise), i.e. something was sharded.
    placements = re.findall(r"(t_cat_\d+)@(\S+)", stdout)
    assert len({t for t, _ in placements}) == len(DEFAULT_CAT_NAMES), stdout
    assert any("r1" in where and where != "all" for _, where in placements), stdout
    _check_unsharded_checkpoint(state)  # rank 1's shards were gathered into rank 0's file


def _gather_every_layout(rank, world_size):
    """On 2 ranks: the example's gather_state_dict returns the whole tables for TW/RW/CW/DP layouts."""
    import importlib.util

    import torch.distributed as dist

    from recsys_lib.distributed.model_parallel import DistributedModelParallel
    from recsys_lib.distributed.sharding_plan import (
        column_wise,
        construct_module_sharding_plan,
        data_parallel,
        row_wise,
        table_wise,
    )
    from recsys_lib.distributed.types import ShardingPlan
    from recsys_lib.optim.apply_optimizer_in_backward import apply_optimizer_in_backward
    from recsys_lib.optim.rowwise_adagrad import RowWiseAdagrad

    spec = importlib.util.spec_from_file_location("dlrm_train_example", SCRIPT)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    torch.manual_seed(0)  # the same plain tables on both ranks: the reference
    ebc = EmbeddingBagCollection(tables=[
        EmbeddingBagConfig(name=f"t{i}", embedding_dim=8, num_embeddings=13 + i, feature_names=[f"f{i}"])
        for i in range(4)
    ])
    reference = {k: v.clone() for k, v in ebc.state_dict().items()}
    apply_optimizer_in_backward(RowWiseAdagrad, ebc.parameters(), {"lr": 0.1})  # as the example: fused kernels
    gens = {"t0": table_wise(rank=1), "t1": row_wise(), "t2": column_wise(ranks=[1, 0]), "t3": data_parallel()}
    plan = ShardingPlan({"": construct_module_sharding_plan(ebc, gens, world_size=world_size, device_type="cpu")})
    dmp = DistributedModelParallel(ebc, device=torch.device("cpu"), plan=plan)
    full = example.gather_state_dict(dmp)
    if rank != 0:
        return len(full)
    return sorted(full) == sorted(reference) and all(torch.equal(full[k], reference[k]) for k in reference)


@pytest.mark.slow  # ~40 s on the shared 2-core machine (two spawned ranks)
@pytest.mark.dist
def test_gather_state_dict_reassembles_every_layout():
    from recsys_lib.distributed.test_utils import run_multiprocess

    assert run_multiprocess(_gather_every_layout, 2) == [True, 0]
