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
