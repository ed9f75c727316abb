"""RecMetricModule update x N + compute (NE, AUC, calibration, CTR; 8 tasks; batch 8192), any N.

    .venv/bin/python benchmarks/metrics.py --updates 100
    .venv-compare/bin/python benchmarks/metrics.py --updates 1000 --compare torchrec --threads 1

Prints each library's wall time for the whole run, the ratio (TorchRec / recsys_lib; > 1: recsys_lib faster)
and, with --compare, the largest difference between the two libraries' metric values.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.cases import metrics as case  # noqa: E402
from benchmarks.run import load_lib  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=1000, help="update calls before the one compute (default 1000)")
    p.add_argument("--compare", choices=["torchrec"], help="also run TorchRec (from .venv-compare) and print ratios")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    case._tolerate_frozen_reports()
    outs = case.model_outs()
    libs = ["recsys_lib"] + ([args.compare] if args.compare else [])
    times, values = {}, {}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.updates} updates of "
          f"{case.N_TASKS} tasks x batch {case.BATCH}, then compute")
    for lib in libs:
        module = case.make_module(load_lib(lib))
        t0 = time.perf_counter()
        values[lib] = case.run(module, outs, args.updates)
        times[lib] = time.perf_counter() - t0
        print(f"{lib:11} {times[lib]:9.3f} s", flush=True)
        del module
    if args.compare:
        ratio = times[args.compare] / times["recsys_lib"]
        diff = max(abs(float(values["recsys_lib"][k]) - float(values[args.compare][k].reshape(-1)[0]))
                   for k in values["recsys_lib"] if k in values[args.compare])
        print(f"ratio ({args.compare} / recsys_lib): {ratio:.2f}x; largest value difference: {diff:.2e}")


if __name__ == "__main__":
    main()
