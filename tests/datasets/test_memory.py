"""Preprocessing memory does not grow with the file: peak RSS (VmHWM) measured in a fresh child process."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import datasets_preproc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from recsys_lib.datasets.criteo import tsv_to_npys_chunked

def kb(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key))

out = {}
for name in sys.argv[2:]:
    open("/proc/self/clear_refs", "w").write("5")  # reset the peak counter
    base = kb("VmRSS")
    tsv_to_npys_chunked(name, name + "_d.npy", name + "_s.npy", name + "_l.npy", chunk_rows=1024, progress=False)
    out[name] = (kb("VmHWM") - base) / 1024
print(json.dumps(out))
"""


def test_tsv_to_npys_memory_is_independent_of_rows(tmp_path):
    small, large = str(tmp_path / "small"), str(tmp_path / "large")
    datasets_preproc.write_tsv(small, 2_000)
    datasets_preproc.write_tsv(large, 20_000)
    res = subprocess.run([sys.executable, "-c", CHILD, ROOT, small, large], check=True, capture_output=True, text=True)
    deltas = json.loads(res.stdout.strip().splitlines()[-1])
    # a whole-file implementation holds 10x more rows for `large` (~5 MiB as arrays, far more as Python lists)
    assert deltas[large] < deltas[small] + 8, deltas
    assert deltas[large] < 64, deltas


@pytest.mark.slow
def test_one_million_rows_stay_under_the_stated_bound():
    results = datasets_preproc.main(["--rows", "1000000"])
    deltas = {step: r["delta_rss_mb"] for step, r in results.items()}
    assert max(deltas.values()) < 400, deltas
