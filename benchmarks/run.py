"""Benchmark harness: median wall time of recsys_lib ops, optionally next to TorchRec in the same run.

    python benchmarks/run.py --case kjt                      # recsys_lib only, small + large
    .venv-compare/bin/python benchmarks/run.py --case kjt --compare torchrec

Each iteration calls the op's ``setup`` (untimed) then times the op once; libraries take turns within each
iteration, in alternating order, so machine noise and allocator state hit both alike. Ratio = TorchRec time / recsys_lib time (> 1: recsys_lib faster).
"""

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.cases import CASES, load_case  # noqa: E402


def load_lib(name: str) -> SimpleNamespace:
    if name == "recsys_lib":
        from recsys_lib.sparse import jagged_tensor as jt
    elif name == "torchrec":
        try:
            from torchrec.sparse import jagged_tensor as jt
        except ImportError as e:  # pragma: no cover - depends on the optional venv
            sys.exit(f"--compare torchrec needs TorchRec installed (see benchmarks/README.md): {e}")
    else:
        sys.exit(f"unknown library {name!r}")
    return SimpleNamespace(KeyedJaggedTensor=jt.KeyedJaggedTensor, JaggedTensor=jt.JaggedTensor, KeyedTensor=jt.KeyedTensor)


def time_benches(benches_by_lib: dict, repeats: int, warmup: int) -> dict:
    """{op name: {lib: median seconds}} with libraries interleaved per iteration."""
    libs = list(benches_by_lib)
    names = [b.name for b in benches_by_lib[libs[0]]]
    out = {}
    for i, name in enumerate(names):
        samples = {lib: [] for lib in libs}
        for it in range(warmup + repeats):
            # alternate which library goes first: the second one inherits the first one's warm allocations
            for lib in (libs if it % 2 == 0 else libs[::-1]):
                bench = benches_by_lib[lib][i]
                arg = bench.setup()
                t0 = time.perf_counter()
                bench.op(arg)
                dt = time.perf_counter() - t0
                if it >= warmup:
                    samples[lib].append(dt)
        out[name] = {lib: statistics.median(s) for lib, s in samples.items()}
    return out


def steady_allocator() -> bool:
    """Keep freed large blocks in glibc's heap (no munmap/mmap + page faults per iteration).

    Multi-MB outputs otherwise get fresh zero pages on every call, and which library pays the page faults depends
    on the allocation order, not on its kernel. Returns False where glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(libc.mallopt(m_trim_threshold, 1 << 31 - 1))
    except (OSError, AttributeError):
        return False


def fmt_ms(s: float) -> str:
    return f"{s * 1e3:9.4f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", action="append", choices=sorted(CASES), help="case(s) to run (default: all)")
    p.add_argument("--size", action="append", help="size(s) to run (default: all sizes of the case)")
    p.add_argument("--op", action="append", help="only these op names (default: all ops of the case)")
    p.add_argument("--compare", choices=["torchrec"], help="also run TorchRec and print ratios")
    p.add_argument("--repeats", type=int, default=None, help="timed iterations per op (default: 200 small, 30 large)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--default-allocator", action="store_true",
                   help="leave glibc's mmap threshold alone (page faults of fresh outputs then count, unevenly)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    steady = False if args.default_allocator else steady_allocator()

    libs = {"recsys_lib": load_lib("recsys_lib")}
    if args.compare:
        libs[args.compare] = load_lib(args.compare)

    rows, ratios = [], []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, steady allocator: {steady}; "
          "times are medians in ms")
    header = f"{'case':6} {'size':6} {'op':20} {'recsys_lib':>10}"
    if args.compare:
        header += f" {args.compare:>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for case_name in args.case or sorted(CASES):
        case = load_case(case_name)
        for size in args.size or list(case.SIZES):
            repeats = args.repeats or (200 if size == "small" else 30)
            benches = {lib: [b for b in case.build(ns, size) if not args.op or b.name in args.op] for lib, ns in libs.items()}
            results = time_benches(benches, repeats, args.warmup)
            for op, t in results.items():
                line = f"{case_name:6} {size:6} {op:20} {fmt_ms(t['recsys_lib']):>10}"
                row = {"case": case_name, "size": size, "op": op, "recsys_lib_s": t["recsys_lib"]}
                if args.compare:
                    ratio = t[args.compare] / t["recsys_lib"]
                    ratios.append(ratio)
                    line += f" {fmt_ms(t[args.compare]):>10} {ratio:6.2f}x"
                    row.update({f"{args.compare}_s": t[args.compare], "ratio": ratio})
                rows.append(row)
                print(line, flush=True)
    if ratios:
        geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"geometric mean ratio ({args.compare} / recsys_lib) over {len(ratios)} ops: {geo:.2f}x")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
