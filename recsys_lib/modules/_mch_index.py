"""Fast exact remap of raw ids through the MCH's sorted id table: a bucket directory over the sorted array.

``torch.searchsorted`` over ``R`` sorted ids costs ``log2(R)`` dependent cache misses per query (20 at
``R = 1M``). The directory cuts the table's id range into ``K ~ 4R`` equal buckets by the high bits
(``b = (id >> shift) - base``) and keeps, per bucket, its first id and that id's row (``-1 - row`` when the bucket
holds more than one id). A query then costs two independent gathers: equal to the bucket's first id -> its row;
a bucket holding one id or none -> a miss; only queries of a crowded bucket that miss its first id (a few
percent of the batch for spread-out ids) go through ``searchsorted``. No hashing and no dict: the state stays
TorchRec's sorted buffers; the directory is derived from them and rebuilt when they change (tensor version
counters), lazily, only when a batch is large enough to pay for it or the table is reused.

=========  ==========================================  ========================================
           plain searchsorted                          directory
=========  ==========================================  ========================================
per id     ``log2(R)`` dependent random reads          2 independent random reads (+ fallback)
build      none                                        one ``searchsorted`` of ``K`` sorted keys
memory     none                                        ``K`` x (int64 id + int64 row) ~ ``64 R`` B
=========  ==========================================  ========================================
"""

from typing import NamedTuple, Optional, Tuple

import torch

_INT64_MAX: int = 9223372036854775807
_MIN_ROWS: int = 4096  # smaller tables stay in cache: plain searchsorted
_BUCKETS_PER_ROW: int = 4


class SortedIdDirectory(NamedTuple):
    """First id / row of each bucket of ``(id >> shift) - base`` over the ``n`` real (non-empty) table ids."""

    first_id: torch.Tensor  # (K,) int64: the bucket's smallest id, 2**63-1 when empty
    code: torch.Tensor  # (K,) int64: its row, or -1 - row when the bucket holds several ids
    shift: int
    base: int
    n: int
    key: Tuple[int, int, int, int]  # versions / storages of the buffers it was built from


def table_key(sorted_ids: torch.Tensor, mapping: torch.Tensor) -> Tuple[int, int, int, int]:
    return sorted_ids._version, sorted_ids.data_ptr(), mapping._version, mapping.data_ptr()


def build_directory(sorted_ids: torch.Tensor, mapping: torch.Tensor) -> Optional[SortedIdDirectory]:
    """Directory of a sorted table whose empty slots (``2**63-1``) sit at the end; None for small tables."""
    n = int(torch.searchsorted(sorted_ids, torch.tensor([_INT64_MAX], device=sorted_ids.device)))
    if n < _MIN_ROWS:
        return None
    real = sorted_ids[:n]
    lo, hi = int(real[0]), int(real[n - 1])
    target = 1 << (_BUCKETS_PER_ROW * n - 1).bit_length()
    shift = 0
    while (hi >> shift) - (lo >> shift) + 1 > target:
        shift += 1
    base = lo >> shift
    buckets = (hi >> shift) - base + 1
    keys = (real >> shift) - base  # non-decreasing in [0, buckets)
    starts = torch.searchsorted(keys, torch.arange(buckets + 1, device=real.device))
    counts = starts[1:] - starts[:-1]
    first = starts[:-1].clamp(max=n - 1)
    first_id = torch.where(counts > 0, real[first], _INT64_MAX)
    row = mapping[first]
    code = torch.where(counts > 1, -1 - row, row)
    return SortedIdDirectory(first_id, code, shift, base, n, table_key(sorted_ids, mapping))


def remap_with_directory(
    sorted_ids: torch.Tensor, mapping: torch.Tensor, d: SortedIdDirectory, ids: torch.Tensor, miss: int
) -> torch.Tensor:
    """Rows ``(N,)`` of int64 ``ids`` ``(N,)``; ids not in the table get ``miss``. Exact (same as searchsorted)."""
    b = (ids >> d.shift).sub_(d.base).clamp_(0, d.first_id.numel() - 1)
    hit = d.first_id[b] == ids
    code = d.code[b]
    rows = torch.where(hit, torch.where(code < 0, -1 - code, code), miss)
    crowded = ((code < 0) & ~hit).nonzero().squeeze(1)  # may sit further inside a crowded bucket
    if crowded.numel() > 0:
        sub = ids[crowded]
        real = sorted_ids[: d.n]
        pos = torch.searchsorted(real, sub).clamp_(max=d.n - 1)
        rows[crowded] = torch.where(real[pos] == sub, mapping[pos], miss)
    return rows


def worth_building(table_rows: int, batch_ids: int, seen_before: bool) -> bool:
    """Build when the table is reused (same version as the last remap) or one batch pays for the build."""
    return table_rows >= _MIN_ROWS and (seen_before or batch_ids * 4 >= table_rows * _BUCKETS_PER_ROW)
