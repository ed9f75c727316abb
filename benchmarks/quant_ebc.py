"""Quantized EmbeddingBagCollection forward on CPU: recsys_lib vs TorchRec 1.8.0, FP32 / FP16 / INT8 / INT4.

    .venv-compare/bin/python benchmarks/quant_ebc.py --tables 26 --rows 100000 --dim 128 --batch 512

Both libraries quantize the same float weights and run the same batch (ids uniform, bag length uniform in
[0, 2*mean]), interleaved iteration by iteration, at each of ``--threads`` (``torch.set_num_threads``); prints the
median forward times (ms), the median of the per-iteration ratios TorchRec / recsys_lib (above 1: recsys_lib
faster; robust to load from other processes), the 1-minute load average when the line was printed, and the
bytes of the quantized tables. At 2+ threads recsys_lib splits the lookup into feature ranges run in parallel
threads (``recsys_lib/quant/_parallel.py``); TorchRec's FBGEMM op runs its tables one after another.
"""

import argparse
import os
import statistics
import time

import torch

DTYPES = {"FP32": torch.float32, "FP16": torch.float16, "INT8": torch.qint8, "INT4": torch.quint4x2}


def _qconfig(qc_cls, dtype):
    obs = torch.ao.quantization.PlaceholderObserver
    return qc_cls(activation=obs.with_args(dtype=torch.float), weight=obs.with_args(dtype=dtype))


def build(lib, quant_mod, qc_cls, weights, dtype, args):
    tables = [lib.EmbeddingBagConfig(num_embeddings=args.rows, embedding_dim=args.dim, name="t" + str(i),
                                     feature_names=["f" + str(i)]) for i in range(args.tables)]
    ebc = lib.EmbeddingBagCollection(tables, device=torch.device("meta"))
    ebc = ebc.to_empty(device="cpu")
    with torch.no_grad():
        for i, w in enumerate(weights):
            ebc.embedding_bags["t" + str(i)].weight.copy_(w)
    ebc.qconfig = _qconfig(qc_cls, dtype)
    q = quant_mod.EmbeddingBagCollection.from_float(ebc)
    del ebc
    return q


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tables", type=int, default=26)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--mean_ids", type=int, default=20)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--dtypes", type=str, default="FP32,FP16,INT8,INT4")
    p.add_argument("--threads", type=str, default="1,2", help="comma-separated torch.set_num_threads values")
    args = p.parse_args()

    import torchrec
    import torchrec.quant.embedding_modules as tq
    from torchrec.modules.embedding_configs import QuantConfig as TQC

    import recsys_lib
    import recsys_lib.quant.embedding_modules as rq
    from recsys_lib.modules.embedding_configs import QuantConfig as RQC

    g = torch.Generator().manual_seed(0)
    weights = [torch.rand(args.rows, args.dim, generator=g) * 0.2 - 0.1 for _ in range(args.tables)]
    keys = ["f" + str(i) for i in range(args.tables)]
    lengths = torch.randint(0, 2 * args.mean_ids + 1, (args.tables * args.batch,), generator=g, dtype=torch.int32)
    values = torch.randint(0, args.rows, (int(lengths.sum()),), generator=g)
    print("shape: %d tables x %d rows x D=%d, batch %d, %d ids" % (
        args.tables, args.rows, args.dim, args.batch, values.numel()))
    fp32_bytes = None
    for name in args.dtypes.split(","):
        dtype = DTYPES[name]
        ours = build(recsys_lib, rq, RQC, weights, dtype, args)
        theirs = build(torchrec, tq, TQC, weights, dtype, args)
        nbytes = sum(v.view(torch.uint8).numel() if v.dtype == torch.uint8 else v.numel() * v.element_size()
                     for v in ours.state_dict().values())
        fp32_bytes = nbytes if name == "FP32" else fp32_bytes
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            times = {"ours": [], "torchrec": []}
            out = {}
            for it in range(args.repeats + 3):
                for lib_name, mod, lib in (("ours", ours, recsys_lib), ("torchrec", theirs, torchrec)):
                    kjt = lib.KeyedJaggedTensor(keys=keys, values=values, lengths=lengths)
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        res = mod(kjt).values()
                    dt = time.perf_counter() - t0
                    if it >= 3:
                        times[lib_name].append(dt * 1e3)
                    out[lib_name] = res
            same = torch.equal(out["ours"], out["torchrec"])
            mo, mt = statistics.median(times["ours"]), statistics.median(times["torchrec"])
            ratio = statistics.median(t / o for t, o in zip(times["torchrec"], times["ours"]))
            size = "" if fp32_bytes is None else "  bytes vs FP32: %.3f" % (nbytes / fp32_bytes)
            print("%-5s %d thr  ours %8.2f ms  torchrec %8.2f ms  median ratio %.2f  outputs equal: %s  load %.1f  "
                  "table bytes %.1f MB%s" % (name, threads, mo, mt, ratio, same, os.getloadavg()[0], nbytes / 1e6, size))
        del ours, theirs


if __name__ == "__main__":
    main()
