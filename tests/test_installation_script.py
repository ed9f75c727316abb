"""``test_installation.py`` (repository root): TorchRec's installation check, run as users run it.

* its imports are TorchRec's documented paths with only ``torchrec`` renamed to ``recsys_lib``;
* ``torchrun --nproc_per_node=2 test_installation.py --cpu_only`` trains and prints the success line, and
  the plan it prints is the one ``EmbeddingShardingPlanner`` makes for the same model (computed here);
* ``DistributedModelParallel(module=..., device=...)`` with no plan asks the planner (spied; 1 gloo rank in
  this process, 2 spawned ranks in the slow suite);
* slow: the same at TorchRec's default sizes (20 x 1M x 64), and under ``torchx run -s local_cwd dist.ddp``.
"""

import ast
import importlib.util
import io
import os
import re
import signal
import subprocess
import sys
import tokenize
from pathlib import Path
from typing import List

import pytest
import torch

from recsys_lib.distributed.test_utils import run_multiprocess

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "test_installation.py"
SUCCESS = "Installation looks good!"
SMALL = ["--num_embeddings", "1000", "--embedding_dim", "16", "--batch_size", "64", "--num_iterations", "3"]

# What TorchRec's test_installation.py imports from torchrec (reference §1.1), plus ShardingPlan (a type hint).
TORCHREC_IMPORTS = {
    ("torchrec", "EmbeddingBagCollection"),
    ("torchrec", "KeyedJaggedTensor"),
    ("torchrec.distributed.model_parallel", "DistributedModelParallel"),
    ("torchrec.distributed.types", "ShardingPlan"),
    ("torchrec.models.dlrm", "DLRM"),
    ("torchrec.modules.embedding_configs", "EmbeddingBagConfig"),
    ("torchrec.optim.keyed", "KeyedOptimizerWrapper"),
    ("torchrec.optim.optimizers", "in_backward_optimizer_filter"),
}
THIRD_PARTY_OK = {"torch"}


def _load_script():
    spec = importlib.util.spec_from_file_location("_installation_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(cmd: List[str], timeout: float = 300) -> str:
    """Runs ``cmd`` in the repository root with this interpreter's environment first on PATH; returns
    stdout+stderr, or fails with them. On timeout the whole process group (launcher and ranks) is killed."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s; output:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{' '.join(cmd)} exited with {proc.returncode}; output:\n{out[-6000:]}"
    return out


def _printed_plan(out: str) -> List[str]:
    """The plan lines rank 0 printed (torchx prefixes every line with ``<app>/<replica> [<rank>]:``)."""
    lines = [re.sub(r"^.*?\[\d+\]:", "", line) for line in out.splitlines()]
    return [line for line in lines if re.match(r"^  \S+: \S+ \S+ ranks=", line)]


def _planner_plan(script, world_size: int, argv: List[str]) -> List[str]:
    """The plan EmbeddingShardingPlanner makes for the script's model, computed here without DMP."""
    from recsys_lib.distributed.planner import EmbeddingShardingPlanner, Topology
    from recsys_lib.distributed.sharding_plan import get_default_sharders

    model = script.build_model(script.parse_args(argv), torch.device("cpu"))
    topology = Topology(world_size=world_size, compute_device="cpu", local_world_size=world_size)
    return script.describe_plan(EmbeddingShardingPlanner(topology=topology).plan(model, get_default_sharders()))


def _check_training_output(out: str, world_size: int, steps: int, argv: List[str]) -> None:
    assert any(line.endswith(SUCCESS) for line in out.splitlines()), out[-3000:]
    for rank in range(world_size):
        losses = re.findall(rf"rank {rank} step (\d+): loss (\d+\.\d{{4}})", out)
        assert [int(s) for s, _ in losses] == list(range(steps)), out[-3000:]
        # random 0/1 labels: binary cross-entropy near log 2, certainly finite
        assert all(0.3 < float(v) < 1.5 for _, v in losses), losses
    printed = _printed_plan(out)
    num_tables = int(argv[argv.index("--num_tables") + 1]) if "--num_tables" in argv else 20
    assert len(printed) == num_tables, out[-3000:]
    assert printed == _planner_plan(_load_script(), world_size, argv)


# ---- the script's imports ----

def _script_imports():
    tree = ast.parse(SCRIPT.read_text())
    pairs, modules, lines = set(), set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            pairs |= {(node.module, alias.name) for alias in node.names}
            modules.add(node.module.split(".")[0])
            lines |= set(range(node.lineno, node.end_lineno + 1))
        elif isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
            pairs |= {(alias.name, None) for alias in node.names}
            lines |= set(range(node.lineno, node.end_lineno + 1))
    return pairs, modules, lines


def test_script_imports_are_torchrec_paths_renamed():
    pairs, modules, import_lines = _script_imports()
    ours = {(m, n) for m, n in pairs if m.split(".")[0] == "recsys_lib"}
    renamed = {("torchrec" + m[len("recsys_lib"):], n) for m, n in ours}
    assert renamed == TORCHREC_IMPORTS
    third_party = modules - set(sys.stdlib_module_names) - {"recsys_lib"}
    assert third_party <= THIRD_PARTY_OK, third_party
    # the promised public paths (tests/public_api) hold every one of them
    from tests.test_public_api import NAMES

    promised = {(m, n) for _, m, n in NAMES}
    assert ours <= promised, ours - promised
    # "recsys_lib" appears in code only on import lines (docstrings and comments aside)
    with open(SCRIPT, "rb") as f:
        uses = [t.start[0] for t in tokenize.tokenize(f.readline)
                if t.type == tokenize.NAME and t.string == "recsys_lib"]
    assert uses and set(uses) <= import_lines, sorted(set(uses) - import_lines)


def test_script_rejects_bad_sizes_and_missing_launcher(monkeypatch, capsys):
    script = _load_script()
    with pytest.raises(SystemExit), _quiet():
        script.parse_args(["--num_tables", "0"])
    with pytest.raises(SystemExit), _quiet():
        script.parse_args(["--max_ids_per_feature", "-1"])
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(SystemExit, match="torchrun"):
        script.setup(cpu_only=True)


class _quiet:
    """Silences argparse's usage message on stderr."""

    def __enter__(self):
        self._stderr, sys.stderr = sys.stderr, io.StringIO()

    def __exit__(self, *exc):
        sys.stderr = self._stderr
        return False


# ---- item 3: DistributedModelParallel with no plan calls the planner ----

def _check_dmp_calls_planner(rank: int, world_size: int) -> List[str]:
    import torch.distributed as dist

    from recsys_lib.distributed.model_parallel import DistributedModelParallel
    from recsys_lib.distributed.planner import EmbeddingShardingPlanner

    calls = []
    original = EmbeddingShardingPlanner.collective_plan

    def spy(self, module, sharders=None, pg=None):
        plan = original(self, module, sharders, pg)
        calls.append((pg, plan))
        return plan

    EmbeddingShardingPlanner.collective_plan = spy
    try:
        script = _load_script()
        args = script.parse_args(SMALL + ["--num_tables", "5"])
        model = DistributedModelParallel(module=script.build_model(args, torch.device("cpu")),
                                         device=torch.device("cpu"))
    finally:
        EmbeddingShardingPlanner.collective_plan = original
    assert len(calls) == 1, calls
    pg, plan = calls[0]
    assert pg is not None and dist.get_world_size(pg) == world_size
    assert model.plan is plan
    return script.describe_plan(model.plan)


@pytest.mark.slow
def test_dmp_without_plan_uses_planner_two_ranks():
    plans = run_multiprocess(_check_dmp_calls_planner, 2)
    assert plans[0] == plans[1] and len(plans[0]) == 5
    assert plans[0] == _planner_plan(_load_script(), 2, SMALL + ["--num_tables", "5"])


def test_dmp_without_plan_uses_planner_one_rank():
    """In this process, on a one-rank gloo group (fast); the slow test above does the same on two ranks."""
    import torch.distributed as dist

    from recsys_lib.distributed.test_utils import get_free_port

    if dist.is_initialized():
        pytest.fail("a previous test left a default process group initialised")
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{get_free_port()}", rank=0, world_size=1)
    try:
        plan = _check_dmp_calls_planner(0, 1)
    finally:
        dist.destroy_process_group()
    assert plan == _planner_plan(_load_script(), 1, SMALL + ["--num_tables", "5"])


# ---- the documented launch commands ----

def test_torchrun_two_processes_small():
    argv = ["--cpu_only"] + SMALL
    out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(SCRIPT.name)] + argv)
    _check_training_output(out, 2, 3, argv)


@pytest.mark.slow
def test_torchrun_two_processes_torchrec_defaults():
    """TorchRec's sizes: 20 tables x 1M rows x dim 64 (5.1 GB), batch 1024 (about 35 s, 3 GB per rank here)."""
    out = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                str(SCRIPT.name), "--cpu_only"], timeout=600)
    _check_training_output(out, 2, 5, ["--cpu_only"])


@pytest.mark.slow
def test_torchx_local_cwd_dist_ddp():
    try:
        import torchx  # noqa: F401
    except ImportError:
        pytest.fail("torchx is not installed: pip install -r requirements-dev.txt")
    argv = ["--cpu_only"] + SMALL
    out = _run([sys.executable, "-m", "torchx.cli.main", "run", "-s", "local_cwd", "dist.ddp", "-j", "1x2",
                "--script", SCRIPT.name, "--"] + argv)
    assert "SUCCEEDED" in out, out[-3000:]
    _check_training_output(out, 2, 3, argv)
