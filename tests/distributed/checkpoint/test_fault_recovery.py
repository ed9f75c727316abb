"""Kill one rank mid-training under ``torchrun --max-restarts``: the group restarts, skips the checkpoint that
was cut short, resumes from the last committed one and ends with weights identical to an uninterrupted run."""

import os
import subprocess
import sys

import pytest
import torch

from recsys_lib.distributed.test_utils.multi_process import get_free_port

WORKER = os.path.join(os.path.dirname(__file__), "_resume_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _torchrun(root: str, out: str, *extra: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--max-restarts=3",
           "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{get_free_port()}", WORKER, root, out, *extra]
    env = {**os.environ, "PYTHONPATH": REPO, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]


@pytest.mark.slow
def test_sigkill_one_rank_then_resume_is_identical(tmp_path) -> None:
    _torchrun(str(tmp_path / "plain"), str(tmp_path / "plain.pt"))
    _torchrun(str(tmp_path / "killed"), str(tmp_path / "killed.pt"), "4")
    plain = torch.load(tmp_path / "plain.pt")
    killed = torch.load(tmp_path / "killed.pt")
    assert plain["started_at"] == 0
    # Rank 1 died after writing step 4's files, before the commit: the restart resumed from step 2.
    assert (tmp_path / "killed" / "killed_once").exists() and killed["started_at"] == 2
    assert sorted(plain["weights"]) == sorted(killed["weights"])
    for k, v in plain["weights"].items():
        assert torch.equal(v, killed["weights"][k]), k
