"""Run the same calls on TorchRec 1.8.0 and recsys_lib and compare results, errors, reprs and state-dict keys.

    PYTHONPATH=. .venv-compare/bin/python -m conformance.run [-k substring] [-v]

Each case builds its objects in both libraries (TorchRec first; modules then load TorchRec's state dict strictly, so
weights are equal and the keys must match) and compares every named call. Calls whose difference is a documented
deviation (docs/deviations.md) are listed in KNOWN_DEVIATIONS and reported separately. Exit code 1 on any
unexpected difference.
"""

import argparse
import sys
import warnings
from typing import Any, Dict, List, Tuple

from conformance import cases_modules, cases_other, cases_sharding, cases_sparse
from conformance._compare import Raised, results, same
from conformance._lib import Lib

# (case, call) -> why the results differ on purpose (see docs/deviations.md)
KNOWN_DEVIATIONS: Dict[Tuple[str, str], str] = {
    ("sparse.KeyedJaggedTensor", "bad split"): "TorchRec silently drops the keys past the segments; we raise",
    ("sparse.odd_inputs", "values longer: to_dict"): "TorchRec crashes in split_with_sizes; we ignore trailing values",
    ("sparse.odd_inputs", "offsets not at 0: getitem"): "TorchRec reads from 0; we read offsets as indices (as its JT)",
    ("sparse.odd_inputs", "negative length: sync"): "TorchRec accepts (crashes later); we name key and batch index",
    ("sparse.odd_inputs", "lengths past values: sync"): "TorchRec accepts (crashes later); we name the key",
    ("sparse.odd_inputs", "lengths/offsets disagree: getitem"): "TorchRec follows the lengths silently; we raise",
    ("optim", "RowWiseAdagrad"): "TorchRec crashes on a 1-D parameter (IndexError); we treat it as one row",
    ("optim", "WarmupOptimizer schedule"): "POLY past decay_iters: TorchRec's multiplier goes negative; we clamp at 0",
    ("sharding.layouts", "row_wise R=0 W=2"): "TorchRec: ZeroDivisionError for a table of 0 rows; we give empty shards",
    ("sharding.layouts", "row_wise R=0 W=2 buckets=0"): "TorchRec: ZeroDivisionError for 0 rows; we give empty shards",
}


def _all_cases() -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for mod in (cases_sparse, cases_modules, cases_other, cases_sharding):
        out.update(mod.CASES)
    return out


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", default="", help="run only cases whose name contains this")
    parser.add_argument("-v", action="store_true", help="print every call")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    store: Dict[str, Any] = {}
    ref, ours = Lib("torchrec", store), Lib("recsys_lib", store)
    total = failed = known = 0
    rows = []
    for name, case in _all_cases().items():
        if args.k not in name:
            continue
        a = dict(results(case, ref))
        b = dict(results(case, ours))
        n_ok = n_bad = 0
        for call in list(a) + [c for c in b if c not in a]:
            total += 1
            diff = same(a.get(call, Raised(KeyError("missing call"))), b.get(call, Raised(KeyError("missing call"))),
                        call)
            if diff is None:
                n_ok += 1
                if args.v:
                    print(f"  ok    {name} :: {call}")
            elif (name, call) in KNOWN_DEVIATIONS:
                known += 1
                print(f"  known {name} :: {call}: {KNOWN_DEVIATIONS[(name, call)]}")
            else:
                failed += 1
                n_bad += 1
                print(f"  FAIL  {name} :: {diff}")
        rows.append((name, n_ok, n_bad))
    print()
    print(f"{'case':32s} {'match':>6s} {'differ':>6s}")
    for name, ok, bad in rows:
        print(f"{name:32s} {ok:6d} {bad:6d}")
    print(f"\n{total} calls compared: {total - failed - known} match, {known} documented deviations, {failed} differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
