"""Eager vs compiled dense path (``DLRM.compile_dense_path``): time per step and output parity.

    python -m recsys_lib.models.cuda_graph_benchmark --device cpu --batch-size 256 --bench-iters 20

On CPU ``reduce-overhead`` captures no CUDA graph: the number then measures ``torch.compile`` alone.
"""

import argparse
import logging
import time
from typing import List, Tuple

import torch

from recsys_lib.models.cuda_graph_utils import build_dlrm, collect_outputs, generate_batch
from recsys_lib.sparse.jagged_tensor import KeyedJaggedTensor

logger: logging.Logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", type=str, default="cuda")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--dense-in-features", type=int, default=13)
    p.add_argument("--num-sparse-features", type=int, default=26)
    p.add_argument("--embedding-dim", type=int, default=64)
    p.add_argument("--num-embeddings", type=int, default=100_000)
    p.add_argument("--pooling-factor", type=int, default=20)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--bench-iters", type=int, default=500)
    p.add_argument("--parity-batches", type=int, default=100)
    return p


def _ms_per_step(model: torch.nn.Module, batch: Tuple[torch.Tensor, KeyedJaggedTensor], warmup: int, iters: int,
                 device: torch.device) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            collect_outputs(model, [batch])  # type: ignore[arg-type]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            collect_outputs(model, [batch])  # type: ignore[arg-type]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return (time.perf_counter() - start) * 1000.0 / max(iters, 1)


def main() -> None:
    logging.basicConfig(level=logging.INFO)
    args = _parser().parse_args()
    device = torch.device(args.device)
    if device.type != "cuda":
        logger.warning("device=%s is not CUDA: no CUDA graph is captured, this measures torch.compile only", device)
    shape = dict(num_sparse_features=args.num_sparse_features, num_embeddings=args.num_embeddings,
                 dense_in_features=args.dense_in_features)
    model = build_dlrm(device, embedding_dim=args.embedding_dim, **shape)
    batches: List[Tuple[torch.Tensor, KeyedJaggedTensor]] = [
        generate_batch(device, batch_size=args.batch_size, pooling_factor=args.pooling_factor, **shape)
        for _ in range(args.parity_batches + 1)
    ]
    timing, parity = batches[0], batches[1:]
    with torch.no_grad():
        eager_ms = _ms_per_step(model, timing, args.warmup_iters, args.bench_iters, device)
        eager = collect_outputs(model, parity)
        model.compile_dense_path()
        compiled_ms = _ms_per_step(model, timing, args.warmup_iters, args.bench_iters, device)
        compiled = collect_outputs(model, parity)
    diff = max(((e - c).abs().max().item() for e, c in zip(eager, compiled)), default=0.0)
    print(f"eager {eager_ms:.4f} ms/step | compiled {compiled_ms:.4f} ms/step | "
          f"speedup {(eager_ms - compiled_ms) / eager_ms * 100.0:+.1f}% | max abs diff {diff:.2e} "
          f"({'PASS' if diff < 1e-5 else 'FAIL'})")


if __name__ == "__main__":
    main()
