"""examples/dlrm/dlrm_main.py (the README's first command): 2 processes on random data, checkpoint + resume.

The run's summary must show losses, throughput and validation/test AUC where recsys_lib's AUCMetric equals
torchmetrics' AUROC on the same gathered predictions; a run resumed from the step-3 checkpoint must write the
same step-6 checkpoint as the uninterrupted run (model weights and optimizer state, bit for bit).
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "dlrm" / "dlrm_main.py"
SMALL = ["--batch_size", "32", "--num_embeddings", "200", "--embedding_dim", "8", "--dense_arch_layer_sizes", "16,8",
         "--over_arch_layer_sizes", "16,1", "--limit_val_batches", "2", "--limit_test_batches", "2", "--no_print_progress"]


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    # as with an activated environment: torchx's dist.ddp starts `torchrun` from PATH
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _torchrun(args, nproc=2):
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), f"--nproc_per_node={nproc}", "--standalone", str(SCRIPT)] if nproc > 1 else \
        [sys.executable, str(SCRIPT)]
    out = subprocess.run(cmd + SMALL + args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    return out.stdout


def _check_summary(stdout, processes, steps, validations, samples_per_rank=2 * 32):
    assert f"{processes} process(es), {steps} steps" in stdout, stdout
    first, last = map(float, re.search(r"loss\s+first (\S+)\s+last (\S+)", stdout).groups())
    assert 0 < first < 5 and 0 <= last < 5
    assert re.search(r"throughput\s+[\d,]+ samples/s", stdout)
    aucs = re.findall(r"(val|test)\s+AUC\s+(\S+) \(torchmetrics (\S+)\) at step \d+, (\d+) samples", stdout)
    assert [a[0] for a in aucs] == ["val"] * validations + ["test"], stdout
    for _, ours, theirs, samples in aucs:
        assert ours == theirs and 0.0 <= float(ours) <= 1.0
        if samples_per_rank is not None:
            assert int(samples) == samples_per_rank * processes  # --limit_val/test_batches 2 of 32 per rank


def _load(path):
    return torch.load(path, weights_only=True)["tensors"]


@pytest.mark.parametrize("nproc", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_resumed_run_writes_the_same_checkpoint(tmp_path, nproc):
    ckpt = tmp_path / "ckpt"
    args = ["--adagrad", "--limit_train_batches", "6", "--limit_val_batches", "1", "--limit_test_batches", "1",
            "--checkpoint_dir", str(ckpt), "--checkpoint_every_n_steps", "3"]
    _torchrun(args, nproc)
    assert (ckpt / "latest").read_text().strip() == "step_6"
    full = [_load(ckpt / "step_6" / f"rank{r}.pt") for r in range(nproc)]
    assert any("optim/" in k for k in full[0]) and any("model/" in k for k in full[0])
    # Crash after the step-3 checkpoint: `latest` still names step_3; a rerun resumes there.
    (ckpt / "latest").write_text("step_3\n")
    for r in range(nproc):
        os.remove(ckpt / "step_6" / f"rank{r}.pt")
    stdout = _torchrun(args, nproc)
    assert "resumed from" in stdout and "at step 3" in stdout
    for r in range(nproc):
        resumed = _load(ckpt / "step_6" / f"rank{r}.pt")
        assert sorted(resumed) == sorted(full[r])
        for k in full[r]:
            assert torch.equal(resumed[k], full[r][k]), k


def test_dcn_two_processes_with_validation_and_checkpoints(tmp_path):
    ckpt = tmp_path / "ckpt"
    stdout = _torchrun(["--interaction_type", "dcn", "--adagrad", "--limit_train_batches", "6",
                        "--validation_freq_within_epoch", "2", "--checkpoint_dir", str(ckpt),
                        "--checkpoint_every_n_steps", "3", "--print_sharding_plan"])
    _check_summary(stdout, 2, 6, validations=2)  # at step 3 and at the end of the epoch
    assert "sharding plan:" in stdout and "t_cat_0@" in stdout
    assert sorted(os.listdir(ckpt / "step_3")) == ["rank0.pt", "rank1.pt"]
    assert (ckpt / "latest").read_text().strip() == "step_6"


@pytest.mark.slow
@pytest.mark.parametrize("interaction", ["original", "projection"])
def test_readme_command_original_and_projection(interaction):
    torchrun = pathlib.Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node=2", "--standalone", str(SCRIPT), "--adagrad", "--learning_rate", "0.01",
           "--interaction_type", interaction, "--no_print_progress"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=_env())
    assert out.returncode == 0, out.stderr[-5000:]
    first, last = map(float, re.search(r"loss\s+first (\S+)\s+last (\S+)", out.stdout).groups())
    assert last < first  # the 10 cycled training batches are being memorised


@pytest.mark.slow
def test_torchx_component_runs_two_trainers():
    try:
        import torchx  # noqa: F401
    except ImportError:
        pytest.fail("torchx is not installed: pip install -r requirements-dev.txt")
    cmd = [sys.executable, "-m", "torchx.cli.main", "run", "-s", "local_cwd",
           "examples/dlrm/dlrm_component.py:run_dlrm_main", "--num_trainers", "2", "--", *SMALL,
           "--limit_train_batches", "4"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900, env=_env())
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "2 process(es), 4 steps" in out.stdout + out.stderr


def _tiny_criteo_days(folder, rows=48, seed=0):
    """24 TSV day files in Criteo's format: label, 13 ints, 26 hex categories (some empty)."""
    import random

    rng = random.Random(seed)
    folder.mkdir()
    for d in range(24):
        lines = []
        for _ in range(rows):
            ints = [str(rng.randint(0, 50)) if rng.random() > 0.1 else "" for _ in range(13)]
            cats = [format(rng.randint(0, 2**31), "x") if rng.random() > 0.1 else "" for _ in range(26)]
            lines.append("\t".join([str(rng.randint(0, 1))] + ints + cats))
        (folder / f"day_{d}").write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_real_format_criteo_via_preprocessing_script_and_multi_hot(tmp_path):
    import numpy as np

    _tiny_criteo_days(tmp_path / "tsv")
    out = subprocess.run([sys.executable, "-m", "recsys_lib.datasets.scripts.npy_preproc_criteo", "--input_dir",
                          str(tmp_path / "tsv"), "--output_dir", str(tmp_path / "npy"), "--no_progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, env=_env())
    assert out.returncode == 0, out.stderr
    stdout = _torchrun(["--in_memory_binary_criteo_path", str(tmp_path / "npy"), "--limit_train_batches", "4"], nproc=2)
    _check_summary(stdout, 2, 4, validations=1, samples_per_rank=None)  # val/test: the halves of day 23
    # Multi-hot ids (3 per sample and feature) for every day, read in file order by one process.
    (tmp_path / "mh").mkdir()
    rng = np.random.default_rng(0)
    for d in range(24):
        np.savez(tmp_path / "mh" / f"day_{d}_sparse_multi_hot.npz", **{str(f): rng.integers(0, 10**6, (48, 3)) for f in range(26)})
    stdout = _torchrun(["--in_memory_binary_criteo_path", str(tmp_path / "npy"), "--synthetic_multi_hot_criteo_path",
                        str(tmp_path / "mh"), "--limit_train_batches", "4", "--batch_size", "8"], nproc=1)
    assert "1 process(es), 4 steps" in stdout
