"""Managed-collision remap throughput (issue 15): MCH sorted-table remap and hash-ZCH lookup.

    .venv/bin/python benchmarks/run.py --case mc_remap --size large --repeats 10
    .venv-compare/bin/python benchmarks/run.py --case mc_remap --size large --repeats 10 --compare torchrec
    .venv/bin/python benchmarks/cases/mc_remap.py        # ids/s, plus our CPU hash-ZCH insert (TorchRec has none)

``large``: a table of ``R = 1M`` rows holding ``R - 1`` random 62-bit ids, one batch of ``N = 1M`` ids, half of
them in the table (uniform), half unknown. Ops (eval mode, so only the remap is timed):

* ``mch_remap``: ``MCHManagedCollisionModule.remap`` (sorted ids + searchsorted).
* ``hash_zch_lookup``: ``HashZchManagedCollisionModule`` read-only lookup, table filled to ~80% with max_probe
  128. TorchRec runs FBGEMM's kernel on the whole batch; we filter out the ids stored nowhere in the table with a
  cached Bloom filter (``recsys_lib/modules/_zch_directory.py``) and give the kernel only the others, so absent ids
  skip the 128-slot walk (same rows, tests compare them).

Throughput = ``N / time``.
"""

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Size:
    name: str
    rows: int  # R
    batch: int  # N ids


SIZES = {
    "small": Size("small", rows=10_000, batch=10_000),
    "large": Size("large", rows=1_000_000, batch=1_000_000),
}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _is_torchrec(lib) -> bool:
    return lib.KeyedJaggedTensor.__module__.startswith("torchrec")


def _modules(lib):
    if _is_torchrec(lib):
        from torchrec.modules import hash_mc_modules as h
        from torchrec.modules import mc_modules as m
    else:
        from recsys_lib.modules import hash_mc_modules as h
        from recsys_lib.modules import mc_modules as m
    return m, h


def _table(size: Size):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 2**62, (size.rows - 1,), generator=g).unique()
    known = ids[torch.randint(0, ids.numel(), (size.batch // 2,), generator=g)]
    unknown = torch.randint(0, 2**62, (size.batch - known.numel(),), generator=g)
    batch = torch.cat([known, unknown])[torch.randperm(size.batch, generator=g)]
    return ids, batch


def build(lib, size_name: str) -> list:
    size = SIZES[size_name]
    m, h = _modules(lib)
    ids, batch = _table(size)
    jt_cls = lib.JaggedTensor
    lengths = torch.ones(size.batch, dtype=torch.int32)

    mch = m.MCHManagedCollisionModule(zch_size=size.rows, device=torch.device("cpu"),
                                      eviction_policy=m.LFU_EvictionPolicy(), eviction_interval=1, name="t")
    with torch.no_grad():  # the same filled table in both libraries: ids sorted, rows a fixed permutation
        n = ids.numel()
        mch._mch_sorted_raw_ids[:n] = ids
        mch._mch_remapped_ids_mapping.copy_(torch.randperm(size.rows, generator=torch.Generator().manual_seed(1)))
    mch.eval()

    zch = h.HashZchManagedCollisionModule(zch_size=size.rows, device=torch.device("cpu"), total_num_buckets=1,
                                          max_probe=128, name="t")
    fill = ids[: int(0.8 * size.rows)]
    slots = _fill_zch(fill, size.rows)
    with torch.no_grad():
        zch._hash_zch_identities.data.view(-1)[slots] = fill
    zch.eval()

    def setup():
        return {"t": jt_cls(values=batch.clone(), lengths=lengths)}

    return [
        Bench("mch_remap", setup, lambda f: mch.remap(f)),
        Bench("hash_zch_lookup", setup, lambda f: zch.remap(f)),
    ]


def _fill_zch(ids: torch.Tensor, rows: int) -> torch.Tensor:
    # where a training insert would put them (our CPU insert: both libraries then read the same table)
    from recsys_lib.modules._zch_probe import insert

    identities = torch.full((rows, 1), -1, dtype=torch.int64)
    slots, _ = insert(ids, identities, 128)
    return slots


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(root))
    from recsys_lib.modules._zch_probe import insert
    from recsys_lib.sparse import jagged_tensor as jt_mod
    from types import SimpleNamespace

    lib = SimpleNamespace(KeyedJaggedTensor=jt_mod.KeyedJaggedTensor, JaggedTensor=jt_mod.JaggedTensor)
    size = SIZES["large"]
    for bench in build(lib, "large"):
        arg = bench.setup()
        bench.op(arg)
        t0 = time.perf_counter()
        bench.op(bench.setup())
        dt = time.perf_counter() - t0
        print(f"{bench.name:16} {dt * 1e3:9.1f} ms  {size.batch / dt / 1e6:6.2f} M ids/s")
    ids, batch = _table(size)
    identities = torch.full((size.rows, 1), -1, dtype=torch.int64)
    t0 = time.perf_counter()
    insert(batch, identities, 128)
    dt = time.perf_counter() - t0
    print(f"{'hash_zch_insert':16} {dt * 1e3:9.1f} ms  {size.batch / dt / 1e6:6.2f} M ids/s (empty table, CPU insert)")
