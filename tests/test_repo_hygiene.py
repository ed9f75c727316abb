"""Standing rules of the repository (house style), checked on every run."""

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "recsys_lib"

LINE_CAP = 800
# Files allowed past the cap, each with the reason. Keep this empty if at all possible.
LINE_CAP_EXCEPTIONS = {
    "recsys_lib/sparse/jagged_tensor.py": (
        "JaggedTensor, KeyedJaggedTensor and KeyedTensor live at their public path: TorchScript compiles a class "
        "from the source file its __module__ names, so they cannot sit in private siblings; their pure helpers do "
        "(_kjt_ops, _kjt_dist, _kjt_checks, _checks, _pytree)."
    ),
}

# Optional packages `import recsys_lib` must not pull in.
OPTIONAL_MODULES = ["torchrec", "matplotlib", "tensordict", "torchx", "pandas", "sklearn"]


def _py_files(*dirs):
    for d in dirs:
        p = ROOT / d
        if p.is_file():
            yield p
        elif p.is_dir():
            yield from p.rglob("*.py")


def test_file_size_cap():
    too_big = []
    for f in _py_files("recsys_lib"):
        n = sum(1 for _ in f.open(encoding="utf-8"))
        rel = str(f.relative_to(ROOT))
        if n > LINE_CAP and rel not in LINE_CAP_EXCEPTIONS:
            too_big.append(f"{rel}: {n} lines")
    assert not too_big, f"files over the {LINE_CAP}-line cap (split by concept): {too_big}"


def test_never_imports_torchrec():
    pat = re.compile(r"^\s*(import torchrec|from torchrec)\b", re.M)
    hits = [str(f.relative_to(ROOT)) for f in _py_files("recsys_lib", "tests", "examples", "test_installation.py")
            if pat.search(f.read_text(encoding="utf-8"))]
    assert not hits, f"only benchmarks/ may import torchrec: {hits}"


def test_no_sharding_type_branches_outside_registry():
    pat = re.compile(r"sharding_type\s*(==|!=|in)\s*[\(\[]?\s*ShardingType\.")
    hits = []
    for f in _py_files("recsys_lib"):
        if "sharding/strategy" in f.as_posix():
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if pat.search(line):
                hits.append(f"{f.relative_to(ROOT)}:{i}")
    assert not hits, f"ask the strategy registry instead of branching on the sharding type: {hits}"


def test_no_future_annotations_in_library():
    # Jagged types and inference modules must stay scriptable: no postponed annotations.
    hits = [str(f.relative_to(ROOT)) for f in _py_files("recsys_lib")
            if "from __future__ import annotations" in f.read_text(encoding="utf-8")]
    assert not hits, hits


def test_import_is_lean():
    code = (
        "import sys, torch\n"
        "import recsys_lib\n"
        f"bad = [m for m in {OPTIONAL_MODULES!r} if m in sys.modules]\n"
        "assert not bad, f'import recsys_lib pulled in optional packages: {bad}'\n"
        "assert not torch.cuda.is_initialized(), 'import recsys_lib initialised CUDA'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_readme_opens_with_the_ci_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    m = re.search(r"^TEST_CMD='(.*)'$", ci, re.M)
    assert m, ".ci/run must define TEST_CMD"
    head = readme[:1500]
    assert m.group(1) in head, "README must open with the same test command CI runs"
