"""Which rows of a list of files each rank reads (pure arithmetic, no I/O)."""

from typing import Dict, List, Optional, Tuple


def rank_row_span(total_rows: int, rank: int, world_size: int) -> Tuple[int, int]:
    """Half-open span ``[lo, hi)`` of ``range(total_rows)`` owned by ``rank``.

    Rows are split into ``world_size`` contiguous spans; the first ``total_rows % world_size`` ranks get one
    extra row. Example, 10 rows on 4 ranks::

        rank:  0      1      2    3
        rows:  0-2    3-5    6-7  8-9
    """
    if world_size <= 0:
        raise ValueError(f"world_size must be positive, got {world_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
    base, extra = divmod(total_rows, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def get_file_row_ranges_and_remainder(
    lengths: List[int],
    rank: int,
    world_size: int,
    start_row: int = 0,
    last_row: Optional[int] = None,
) -> Tuple[Dict[int, Tuple[int, int]], int]:
    """This rank's share of the rows ``start_row .. last_row`` (inclusive) of the concatenated files.

    Args:
        lengths: row count of each file, in order.
        rank, world_size: the reader.
        start_row: first global row to split (default 0).
        last_row: last global row to split, inclusive (default: the last row of the last file).

    Returns:
        ``({file index: (first row, last row)}, remainder)``: inclusive row ranges local to each file the rank
        touches, and ``(number of rows) % world_size`` (the ranks below it hold one extra row).
    """
    if any(n < 0 for n in lengths):
        raise ValueError(f"file lengths must be >= 0, got {lengths}")
    total = sum(lengths)
    end = total if last_row is None else last_row + 1
    if not 0 <= start_row <= end <= total:
        raise ValueError(f"rows [{start_row}, {end - 1}] are not inside the {total} rows of the files")
    lo, hi = rank_row_span(end - start_row, rank, world_size)
    lo, hi = lo + start_row, hi + start_row
    ranges: Dict[int, Tuple[int, int]] = {}
    file_lo = 0
    for idx, n in enumerate(lengths):
        a, b = max(lo, file_lo), min(hi, file_lo + n)
        if a < b:
            ranges[idx] = (a - file_lo, b - 1 - file_lo)
        file_lo += n
    return ranges, (end - start_row) % world_size


def batch_row_spans(
    total_rows: int, batch_size: int, rank: int, world_size: int, drop_last: bool
) -> List[Tuple[int, int]]:
    """Half-open row spans, one per batch, that ``rank`` yields when batches are dealt round-robin.

    Full batches go to ranks in turn (global batch ``k`` → rank ``k % world_size``) for as many whole rounds as
    fit; the rows after the last whole round are split into one final batch per rank (lower ranks one row more).
    When fewer than ``world_size`` rows would be left over, the last whole round is folded into the final
    batches so that no rank gets an empty one (with fewer rows than ranks in all, no rank gets any). ``drop_last`` drops the rows after the last whole round.
    This is how TorchRec 1.8.0's in-memory Criteo loader deals rows (observed on the same files). Example,
    33 rows, batch 4, 2 ranks::

        rank 0:  0-3    8-11   16-19   24-28 (5 rows)
        rank 1:  4-7   12-15   20-23   29-32 (4 rows)
    """
    rank_row_span(0, rank, world_size)  # validates rank / world_size
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    num_full = total_rows // batch_size // world_size * world_size
    leftover = total_rows - num_full * batch_size
    if drop_last:
        leftover = 0
    elif 0 < leftover < world_size:
        if num_full > 0:
            num_full -= world_size
            leftover += world_size * batch_size
        else:  # fewer rows than ranks: nothing can be dealt evenly, every rank yields nothing (as TorchRec)
            leftover = 0
    spans = []
    for j in range(num_full // world_size):
        lo = (j * world_size + rank) * batch_size
        spans.append((lo, lo + batch_size))
    if leftover:
        base, extra = divmod(leftover, world_size)
        lo = num_full * batch_size + rank * base + min(rank, extra)
        n = base + (1 if rank < extra else 0)
        if n:
            spans.append((lo, lo + n))
    return spans
