"""Criteo preprocessing benchmark: peak RSS and rows/s of the streamed TSV → npy → contiguous → shuffle steps.

    .venv/bin/python benchmarks/datasets_preproc.py --rows 1000000
    .venv-compare/bin/python benchmarks/datasets_preproc.py --rows 1000000 --compare torchrec

Writes a synthetic Criteo TSV (40 columns, ~10% empty fields) into a temp dir, then runs each step in a fresh
child process whose peak RSS (``VmHWM``, reset after the imports via ``/proc/self/clear_refs``) is measured
alone, next to the RSS of the same child right after its imports (Linux only). ``--compare torchrec`` also runs TorchRec's ``tsv_to_npys`` on the same file and checks
that both write byte-identical ``.npy`` files. Memory should depend on ``--chunk_rows`` and the vocabulary, not on ``--rows``: run two sizes to see.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from recsys_lib.datasets import criteo as C
from recsys_lib.datasets.criteo import BinaryCriteoUtils as U

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) / 1024

open("/proc/self/clear_refs", "w").write("5")  # reset the peak-RSS counter (VmHWM) after the imports
base = status("VmRSS")
d = {tmp!r}
t0 = time.perf_counter()
step = {step!r}
if step == "tsv_to_npys":
    C.tsv_to_npys_chunked(d + "/day_0", d + "/day_0_dense.npy", d + "/day_0_sparse.npy", d + "/day_0_labels.npy",
                  chunk_rows={chunk}, progress=False)
elif step == "torchrec_tsv_to_npys":
    from torchrec.datasets.criteo import BinaryCriteoUtils as T
    T.tsv_to_npys(d + "/day_0", d + "/tr_dense.npy", d + "/tr_sparse.npy", d + "/tr_labels.npy")
elif step == "sparse_to_contiguous":
    C.sparse_to_contiguous_chunked([d + "/day_0_sparse.npy"], d + "/contig", chunk_rows={array_chunk}, progress=False)
else:
    import shutil
    for p in ("dense", "labels"):
        shutil.copy(d + f"/day_0_{{p}}.npy", d + f"/day_1_{{p}}.npy")
    shutil.copy(d + "/contig/day_0_sparse_contig_freq.npy", d + "/contig/day_1_sparse_contig_freq.npy")
    n = U.get_shape_from_npy(d + "/day_0_labels.npy")[0]
    C.shuffle_chunked(d, d + "/contig", d + "/shuf", {{0: n, 1: n}}, days=2, chunk_rows={array_chunk}, bucket_rows={bucket},
              progress=False)
dt = time.perf_counter() - t0
print(json.dumps(dict(seconds=dt, base_rss_mb=base, peak_rss_mb=status("VmHWM"))))
"""


def write_tsv(path: str, rows: int, seed: int = 0, chunk: int = 100_000) -> None:
    """Synthetic Criteo rows: labels 0/1, dense ints in [-2, 1000), Zipf-distributed 8-digit hex ids, ~10% empty."""
    rng = np.random.default_rng(seed)
    vocab = 20_000
    hex_ids = np.array([f"{v:08x}" for v in rng.integers(0, 2**32, size=26 * vocab)], dtype=object).reshape(26, vocab)
    dec = np.array([str(v) for v in range(-2, 1000)], dtype=object)
    with open(path, "w") as f:
        for lo in range(0, rows, chunk):
            n = min(chunk, rows - lo)
            label = rng.integers(0, 2, (n, 1)).astype(str).astype(object)
            dense = dec[rng.integers(0, len(dec), (n, 13))]
            sparse = hex_ids[np.arange(26), rng.zipf(1.3, (n, 26)) % vocab]
            table = np.concatenate([label, dense, sparse], 1)
            empty = rng.random(table.shape) < 0.1
            empty[:, 0] = False
            table[empty] = ""
            f.write("\n".join("\t".join(r) for r in table.tolist()) + "\n")


def run_step(tmp: str, step: str, chunk: int, array_chunk: int, bucket: int) -> dict:
    code = CHILD.format(root=ROOT, tmp=tmp, step=step, chunk=chunk, array_chunk=array_chunk, bucket=bucket)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--chunk_rows", type=int, default=1 << 14, help="TSV rows parsed per chunk")
    p.add_argument("--array_chunk_rows", type=int, default=1 << 18, help="npy rows per chunk (contiguous, shuffle)")
    p.add_argument("--bucket_rows", type=int, default=1 << 18)
    p.add_argument("--rss_bound_mb", type=float, default=400.0, help="allowed peak RSS above the child's import RSS")
    p.add_argument("--steps", default="tsv_to_npys,sparse_to_contiguous,shuffle")
    p.add_argument("--compare", choices=["torchrec"], help="also time TorchRec's tsv_to_npys and compare outputs")
    args = p.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_tsv(os.path.join(tmp, "day_0"), args.rows)
        size_mb = os.path.getsize(os.path.join(tmp, "day_0")) / 2**20
        print(f"synthetic TSV: {args.rows:,} rows, {size_mb:.0f} MiB, written in {time.perf_counter() - t0:.1f} s")
        print(f"{'step':<22}{'rows/s':>12}{'seconds':>9}{'import RSS':>12}{'peak RSS':>10}{'delta':>8}  (MiB)")
        steps = args.steps.split(",") + (["torchrec_tsv_to_npys"] if args.compare else [])
        for step in steps:
            r = run_step(tmp, step, args.chunk_rows, args.array_chunk_rows, args.bucket_rows)
            rows = args.rows * (2 if step == "shuffle" else 1)
            r["rows_per_s"] = rows / r["seconds"]
            r["delta_rss_mb"] = r["peak_rss_mb"] - r["base_rss_mb"]
            results[step] = r
            print(f"{step:<22}{r['rows_per_s']:>12,.0f}{r['seconds']:>9.1f}{r['base_rss_mb']:>12.0f}"
                  f"{r['peak_rss_mb']:>10.0f}{r['delta_rss_mb']:>8.0f}")
        if args.compare:
            import filecmp

            same = [filecmp.cmp(os.path.join(tmp, f"day_0_{p}.npy"), os.path.join(tmp, f"tr_{p}.npy"), shallow=False)
                    for p in ("dense", "sparse", "labels")]
            results["identical_to_torchrec"] = all(same)
            print(f"outputs byte-identical to TorchRec's (dense, sparse, labels): {same}")
    worst = max(r["delta_rss_mb"] for k, r in results.items() if k in args.steps.split(","))
    verdict = "OK" if worst <= args.rss_bound_mb else "OVER"
    print(f"max peak RSS above imports: {worst:.0f} MiB (bound {args.rss_bound_mb:.0f} MiB): {verdict}")
    return results


if __name__ == "__main__":
    main()
