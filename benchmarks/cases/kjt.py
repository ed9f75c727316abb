"""KJT / JT / KT micro-ops (issue 2, item 6).

Every op gets fresh inputs from its ``setup`` (not timed) so lazy caches never carry over between iterations:
a KJT arrives the way a data loader hands it over (keys, values, lengths; no per-key caches), and each op pays for
whatever host syncs it needs.
"""

from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class Size:
    name: str
    features: int   # F
    batch: int      # B
    mean_ids: int   # mean bag length L (uniform in [0, 2L])
    dim: int        # D of each key in the KeyedTensor case


SIZES = {
    "small": Size("small", features=8, batch=64, mean_ids=5, dim=16),
    "large": Size("large", features=26, batch=2048, mean_ids=20, dim=64),
}


@dataclass
class Bench:
    name: str
    setup: Callable[[], Any]
    op: Callable[[Any], Any]


def _data(size: Size):
    g = torch.Generator().manual_seed(0)
    keys = [f"f{i}" for i in range(size.features)]
    # lengths: (F*B,) key-major, int32 as TorchRec's data loaders produce; values: (sum(L),) int64 ids
    lengths = torch.randint(0, 2 * size.mean_ids + 1, (size.features * size.batch,), generator=g, dtype=torch.int32)
    values = torch.randint(0, 1_000_000, (int(lengths.sum()),), generator=g, dtype=torch.int64)
    pooled = [torch.randn(size.batch, size.features // 2 * size.dim, generator=g) for _ in range(2)]
    return keys, lengths, values, pooled


def build(lib, size_name: str) -> list[Bench]:
    """``lib`` has the three classes as attributes (recsys_lib.sparse.jagged_tensor or torchrec's)."""
    size = SIZES[size_name]
    keys, lengths, values, pooled = _data(size)
    KJT, JT, KT = lib.KeyedJaggedTensor, lib.JaggedTensor, lib.KeyedTensor
    f = size.features
    half = f // 2
    reverse = list(range(f))[::-1]

    def fresh():
        return KJT(keys=keys, values=values, lengths=lengths)

    kt_keys = [keys[:half], keys[half:]]
    groups = [[k for i, k in enumerate(keys) if i % 2 == 0], [k for i, k in enumerate(keys) if i % 2 == 1]]
    fvalues = values.to(torch.float32)

    return [
        Bench("construct", lambda: None, lambda _: KJT(keys=keys, values=values, lengths=lengths)),
        Bench("from_lengths_sync", lambda: None, lambda _: KJT.from_lengths_sync(keys=keys, values=values, lengths=lengths)),
        Bench("permute", fresh, lambda k: k.permute(reverse)),
        Bench("split", fresh, lambda k: k.split([half, f - half])),
        Bench("to_dict", fresh, lambda k: k.to_dict()),
        Bench("getitem", fresh, lambda k: k[keys[-1]]),
        Bench("concat", lambda: [fresh(), fresh()], lambda ks: KJT.concat(ks)),
        Bench(
            "JT.to_padded_dense",
            lambda: JT(values=fvalues, lengths=lengths),
            lambda jt: jt.to_padded_dense(desired_length=size.mean_ids),
        ),
        Bench(
            "KT.regroup",
            lambda: [KT(keys=kt_keys[i], length_per_key=[size.dim] * len(kt_keys[i]), values=pooled[i]) for i in range(2)],
            lambda kts: KT.regroup(kts, groups),
        ),
    ]
