"""examples/zch/train_sharded.py: raw 64-bit ids through a row-wise sharded MC-EC, 2 CPU processes (torchrun)."""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

from recsys_lib.distributed.test_utils.multi_process import get_free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "zch" / "train_sharded.py"


@pytest.mark.slow
def test_sharded_zch_example_learns_and_keeps_popular_ids(tmp_path):
    args = ["--num_batches", "120", "--rows", "600", "--vocab", "6000", "--out_dir", str(tmp_path)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={get_free_port()}",
           str(SCRIPT)] + args
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    first, last = map(float, re.search(r"loss\s+first (\S+)\s+last (\S+)", out.stdout).groups())
    assert last < first, out.stdout
    owned = [int(x) for x in re.search(r"per feature: \[(.*)\]", out.stdout).group(1).split(",")]
    assert all(o > 0.5 * 300 for o in owned), out.stdout  # most of the 300 most popular ids own a row
    for rank in range(2):
        state = torch.load(tmp_path / f"rank{rank}.pt")
        ids = state["mc_ec._managed_collision_collection._managed_collision_modules.t0._mch_sorted_raw_ids"]
        assert ids.numel() == 300  # this rank's half of the 600 rows
