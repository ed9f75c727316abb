"""Criteo data path (issue 7): TSV → npy conversion, npy row-range reads, in-memory batch iteration.

    .venv/bin/python benchmarks/run.py --case datasets --size small
    .venv-compare/bin/python benchmarks/run.py --case datasets --compare torchrec

With ``--compare torchrec`` the same ops run through ``torchrec.datasets.criteo`` on the same files. For peak
RSS and rows/s of the full preprocessing chain on >= 1M rows, use ``benchmarks/datasets_preproc.py``.
"""

import atexit
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

from benchmarks.datasets_preproc import write_tsv


@dataclass(frozen=True)
class Size:
    name: str
    rows: int
    batch: int


SIZES = {"small": Size("small", rows=5_000, batch=512), "large": Size("large", rows=100_000, batch=4096)}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _criteo(lib):
    if lib.KeyedJaggedTensor.__module__.startswith("torchrec"):
        from torchrec.datasets import criteo
    else:
        from recsys_lib.datasets import criteo
    return criteo


def build(lib, size_name: str):
    size = SIZES[size_name]
    criteo = _criteo(lib)
    tmp = tempfile.mkdtemp(prefix="bench_datasets_")
    atexit.register(shutil.rmtree, tmp, True)
    tsv = os.path.join(tmp, "day_0")
    write_tsv(tsv, size.rows)
    outs = [os.path.join(tmp, f"day_0_{p}.npy") for p in ("dense", "sparse", "labels")]
    utils = criteo.BinaryCriteoUtils
    quiet = {} if criteo.__name__.startswith("torchrec") else {"progress": False}
    utils.tsv_to_npys(tsv, *outs, **quiet)

    def convert(_):
        utils.tsv_to_npys(tsv, *[o.replace("day_0_", "conv_") for o in outs], **quiet)

    def read_range(_):
        utils.load_npy_range(outs[1], size.rows // 3, size.rows // 3)

    def iterate(_):
        dp = criteo.InMemoryBinaryCriteoIterDataPipe(
            "train", [outs[0]], [outs[1]], [outs[2]], batch_size=size.batch, rank=0, world_size=1,
            hashes=[100_000] * 26,
        )
        for _batch in dp:
            pass

    return [
        Bench(f"tsv_to_npys_{size.rows}rows", lambda: None, convert),
        Bench("load_npy_range_third", lambda: None, read_range),
        Bench(f"in_memory_iter_b{size.batch}", lambda: None, iterate),
    ]
