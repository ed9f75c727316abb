"""Runs every tutorial script in docs/tutorials/ as its own process, as a reader would.

Each tutorial checks its own numbers (sharded against unsharded outputs, metrics against values computed by hand,
restored against trained weights) with ``assert`` and ends by printing ``tutorial <n> OK``; a failed check exits
non-zero. The scripts are started together (most of their time is process start-up and waiting on collectives),
and each test waits for its own, so a failure names the tutorial and shows its output.
"""

import os
import pathlib
import subprocess
import sys
from typing import Dict

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("[0-9]*.py"))
TIMEOUT_S = 420


@pytest.fixture(scope="module")
def running() -> Dict[str, subprocess.Popen]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    procs = {
        t.name: subprocess.Popen(
            [sys.executable, str(t)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for t in TUTORIALS
    }
    yield procs
    for p in procs.values():  # only ours, and only if a test left one running
        if p.poll() is None:
            p.kill()
            p.wait()


def test_every_tutorial_has_a_page():
    assert TUTORIALS, "no tutorial scripts found"
    for script in TUTORIALS:
        page = script.with_suffix(".md")
        assert page.exists(), f"{script.name} has no page {page.name}"
        assert f"{{literalinclude}} {script.name}" in page.read_text(encoding="utf-8"), (
            f"{page.name} must include {script.name}"
        )


@pytest.mark.parametrize("name", [t.name for t in TUTORIALS])
def test_tutorial_runs(running, name):
    proc = running[name]
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"{name} ran past {TIMEOUT_S} s:\n{out[-4000:]}")
    assert proc.returncode == 0, f"{name} exited {proc.returncode}:\n{out[-4000:]}"
    number = int(name.split("_", 1)[0])
    assert f"tutorial {number} OK" in out, f"{name} did not reach its end:\n{out[-4000:]}"
