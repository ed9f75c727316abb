"""Unsharded EmbeddingBagCollection: forward, forward+backward+SGD (dense grads), fused train step (issue 3).

    .venv/bin/python benchmarks/run.py --case ebc --size large --repeats 5
    .venv-compare/bin/python benchmarks/run.py --case ebc --size large --repeats 5 --compare torchrec

``large`` is TorchRec's reference shape: 26 tables x 100k rows x D=64, batch 2048, bag length uniform in
[0, 40] (mean 20), one feature per table; ids uniform or Zipf(1.1). ``tbe_raw_train`` is FBGEMM's
``SplitTableBatchedEmbeddingBagsCodegen`` (EXACT_SGD) called directly on the same input: the floor a fused train
step can reach (it is the same code for both libraries). Effective bandwidth of a forward =
``ids x D x 4 bytes / time`` (printed by ``python benchmarks/cases/ebc.py``).
"""

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


@dataclass(frozen=True)
class Size:
    name: str
    tables: int  # T (one feature each)
    rows: int    # R per table
    dim: int     # D
    batch: int   # B
    mean_ids: int  # mean bag length L (uniform in [0, 2L])


SIZES = {
    "small": Size("small", tables=4, rows=1000, dim=16, batch=64, mean_ids=5),
    "large": Size("large", tables=26, rows=100_000, dim=64, batch=2048, mean_ids=20),
}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _inputs(size: Size, zipf: bool):
    g = torch.Generator().manual_seed(1 if zipf else 0)
    # lengths: (T*B,) key-major int32; values: (sum(L),) int64 ids
    lengths = torch.randint(0, 2 * size.mean_ids + 1, (size.tables * size.batch,), generator=g, dtype=torch.int32)
    n = int(lengths.sum())
    if zipf:
        rng = np.random.default_rng(1)
        values = torch.from_numpy((rng.zipf(1.1, n) - 1) % size.rows).to(torch.int64)
    else:
        values = torch.randint(0, size.rows, (n,), generator=g, dtype=torch.int64)
    return lengths, values


def _is_torchrec(lib) -> bool:
    return lib.KeyedJaggedTensor.__module__.startswith("torchrec")


def _modules(lib):
    if _is_torchrec(lib):
        from torchrec.modules import embedding_configs as cfg
        from torchrec.modules.embedding_modules import EmbeddingBagCollection
        from torchrec.modules.fused_embedding_modules import FusedEmbeddingBagCollection
    else:
        from recsys_lib.modules import embedding_configs as cfg
        from recsys_lib.modules.embedding_modules import EmbeddingBagCollection
        from recsys_lib.modules.fused_embedding_modules import FusedEmbeddingBagCollection
    return cfg, EmbeddingBagCollection, FusedEmbeddingBagCollection


def _raw_tbe(size: Size):
    from fbgemm_gpu.split_embedding_configs import EmbOptimType
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import EmbeddingLocation
    from fbgemm_gpu.split_table_batched_embeddings_ops_training import (
        ComputeDevice,
        SplitTableBatchedEmbeddingBagsCodegen,
    )

    spec = (size.rows, size.dim, EmbeddingLocation.HOST, ComputeDevice.CPU)
    return SplitTableBatchedEmbeddingBagsCodegen([spec] * size.tables, optimizer=EmbOptimType.EXACT_SGD,
                                                 learning_rate=0.01)


def build(lib, size_name: str) -> list:
    size = SIZES[size_name]
    cfg, EBC, FusedEBC = _modules(lib)
    KJT = lib.KeyedJaggedTensor
    keys = [f"f{i}" for i in range(size.tables)]
    tables = [cfg.EmbeddingBagConfig(num_embeddings=size.rows, embedding_dim=size.dim, name=f"t{i}",
                                     feature_names=[keys[i]]) for i in range(size.tables)]
    torch.manual_seed(0)
    ebc = EBC(tables=tables, device=torch.device("cpu"))
    opt = torch.optim.SGD(ebc.parameters(), lr=0.01)
    fused = FusedEBC(tables=tables, optimizer_type=torch.optim.SGD, optimizer_kwargs={"lr": 0.01},
                     device=torch.device("cpu"))
    tbe = _raw_tbe(size)
    uniform, zipf = _inputs(size, False), _inputs(size, True)
    grad = torch.randn(size.batch, size.tables * size.dim)

    def fresh(data):
        lengths, values = data
        return lambda: KJT(keys=keys, values=values, lengths=lengths)

    def forward(kjt):
        with torch.no_grad():
            return ebc(kjt).values()

    def train(kjt):
        opt.zero_grad()
        ebc(kjt).values().backward(grad)
        opt.step()

    def fused_train(kjt):
        fused(kjt).values().backward(grad)

    def raw_setup():
        lengths, values = uniform
        offsets = torch.zeros(lengths.numel() + 1, dtype=torch.int64)
        offsets[1:] = lengths.cumsum(0)
        return values, offsets

    def raw_train(arg):
        tbe(arg[0], arg[1]).backward(grad)

    return [
        Bench("ebc_fwd", fresh(uniform), forward),
        Bench("ebc_fwd_zipf", fresh(zipf), forward),
        Bench("ebc_train_sgd", fresh(uniform), train),
        Bench("fused_ebc_train", fresh(uniform), fused_train),
        Bench("fused_ebc_train_zipf", fresh(zipf), fused_train),
        Bench("tbe_raw_train", raw_setup, raw_train),
    ]


if __name__ == "__main__":
    s = SIZES["large"]
    lengths, _ = _inputs(s, False)
    gb = int(lengths.sum()) * s.dim * 4 / 1e9
    print(f"large: {int(lengths.sum())} ids -> {gb:.3f} GB of rows read per forward; GB/s = {gb:.3f} / seconds")
