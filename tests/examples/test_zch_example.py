"""examples/zch/train.py: raw 64-bit ids through an MC-EC (MCH and hash ZCH), one process on CPU."""

import pathlib
import re
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "zch" / "train.py"


@pytest.mark.slow
@pytest.mark.parametrize("zch", ["mch", "hash"])
def test_zch_example_learns_and_keeps_popular_ids(zch, tmp_path):
    args = ["--zch", zch, "--num_batches", "80", "--rows", "600", "--vocab", "6000", "--out_dir", str(tmp_path)]
    out = subprocess.run([sys.executable, str(SCRIPT)] + args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    first, last = map(float, re.search(r"loss\s+first (\S+)\s+last (\S+)", out.stdout).groups())
    assert last < first, out.stdout
    owned = [int(x) for x in re.search(r"per feature: \[(.*)\]", out.stdout).group(1).split(",")]
    assert all(o > 0.5 * 300 for o in owned), out.stdout  # most of the 300 most popular ids own a row
    state = torch.load(tmp_path / f"zch_{zch}.pt")
    key = "_mch_sorted_raw_ids" if zch == "mch" else "_hash_zch_identities"
    assert any(k.endswith(key) for k in state)
