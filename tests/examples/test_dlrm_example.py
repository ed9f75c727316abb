"""The README's main job: examples/dlrm/train.py, one process and under torchrun with 2 gloo ranks."""

import pathlib
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "dlrm" / "train.py"


def _run(cmd, tmp_path):
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    ckpt = tmp_path / "dlrm_random.pt"
    assert ckpt.exists()
    return out.stdout, torch.load(ckpt)


def test_single_process_run_writes_a_loadable_checkpoint(tmp_path):
    stdout, state = _run(
        [sys.executable, str(SCRIPT), "--num_batches", "3", "--batch_size", "32", "--out_dir", str(tmp_path)], tmp_path
    )
    assert "throughput" in stdout
    # TorchRec's DLRM state-dict layout, wrapped by DLRMTrain as `model.`.
    assert state["model.sparse_arch.embedding_bag_collection.embedding_bags.t_cat_0.weight"].shape == (10_000, 16)
    assert "model.over_arch.model.1.weight" in state


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    stdout, state = _run(
        [str(torchrun), "--nproc_per_node=2", str(SCRIPT), "--num_batches", "4", "--batch_size", "32",
         "--out_dir", str(tmp_path)],
        tmp_path,
    )
    assert "2 process(es)" in stdout
    assert len(state) > 0
