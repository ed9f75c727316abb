"""Unsharded EBC forward: recsys_lib, TorchRec and the bare kernel floor, interleaved in one process (issue 19).

    PYTHONPATH=$PWD .venv-compare/bin/python benchmarks/ebc_floor.py --size large --repeats 15
    PYTHONPATH=$PWD .venv-compare/bin/python benchmarks/ebc_floor.py --size wide --repeats 5     # 8 x 1M x 128

"floor" is what any EBC built on aten's CPU ``embedding_bag`` must spend: one kernel call per table over
precomputed per-table ids and offsets, outputs not even concatenated. Both libraries call that same kernel
(TorchRec through ``nn.EmbeddingBag``), so ``TorchRec / floor`` bounds the speed-up any Python-side change can
give. Ids uniform or Zipf(1.1); one feature per table; 1 intra-op thread unless ``--threads``.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from benchmarks.cases.ebc import SIZES, Size, _inputs  # noqa: E402
from benchmarks.run import steady_allocator  # noqa: E402

WIDE = Size("wide", tables=8, rows=1_000_000, dim=128, batch=2048, mean_ids=20)


def _ebc(lib: str, size: Size):
    if lib == "torchrec":
        from torchrec.modules.embedding_configs import EmbeddingBagConfig
        from torchrec.modules.embedding_modules import EmbeddingBagCollection
        from torchrec.sparse.jagged_tensor import KeyedJaggedTensor
    else:
        from recsys_lib.modules.embedding_configs import EmbeddingBagConfig
        from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
        from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor
    tables = [EmbeddingBagConfig(num_embeddings=size.rows, embedding_dim=size.dim, name=f"t{i}",
                                 feature_names=[f"f{i}"]) for i in range(size.tables)]
    torch.manual_seed(0)
    return EmbeddingBagCollection(tables=tables, device=torch.device("cpu")), KeyedJaggedTensor


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="large", choices=["large", "wide"])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    steady_allocator()
    size = SIZES["large"] if args.size == "large" else WIDE
    ours, kjt_ours = _ebc("recsys_lib", size)
    theirs, kjt_theirs = _ebc("torchrec", size)
    theirs.load_state_dict(ours.state_dict())
    keys = [f"f{i}" for i in range(size.tables)]
    weights = [ours.embedding_bags[f"t{i}"].weight.detach() for i in range(size.tables)]
    for zipf in (False, True):
        lengths, values = _inputs(size, zipf)
        per_key = lengths.view(size.tables, -1).sum(1).tolist()
        ids = values.split(per_key)
        local = torch.cat([torch.zeros(size.tables, 1, dtype=torch.int64),
                           lengths.view(size.tables, -1).cumsum(1)], dim=1)

        def floor():
            for t in range(size.tables):
                torch.embedding_bag(weights[t], ids[t], local[t], False, 0, False, None, True, None)

        def run(ebc, kjt_cls):
            def call():
                with torch.no_grad():
                    return ebc(kjt_cls(keys=keys, values=values, lengths=lengths)).values()
            return call

        fns = {"recsys_lib": run(ours, kjt_ours), "torchrec": run(theirs, kjt_theirs), "floor": floor}
        with torch.no_grad():
            assert torch.equal(fns["recsys_lib"](), fns["torchrec"]())
        samples = {k: [] for k in fns}
        ratios = []
        for it in range(args.warmup + args.repeats):
            order = list(fns) if it % 2 == 0 else list(fns)[::-1]
            times = {}
            for k in order:
                t0 = time.perf_counter()
                fns[k]()
                times[k] = time.perf_counter() - t0
            if it >= args.warmup:
                for k, v in times.items():
                    samples[k].append(v)
                ratios.append(times["torchrec"] / times["recsys_lib"])
        med = {k: statistics.median(v) * 1e3 for k, v in samples.items()}
        print(f"{size.name} {'zipf' if zipf else 'uniform'}: recsys_lib {med['recsys_lib']:.2f} ms, torchrec "
              f"{med['torchrec']:.2f} ms, floor {med['floor']:.2f} ms; torchrec/recsys_lib median per-iteration "
              f"ratio {statistics.median(ratios):.2f}x, torchrec/floor {med['torchrec'] / med['floor']:.2f}x",
              flush=True)


if __name__ == "__main__":
    main()
