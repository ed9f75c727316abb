"""Shuffles rows across the Criteo training days (step 3; the last day is copied unchanged).

    python -m recsys_lib.datasets.scripts.shuffle_preproc_criteo --input_dir_labels_and_dense /data/npy \
        --input_dir_sparse /data/contig --output_dir_shuffled /data/shuffled --random_seed 0

Rows per day are read from the ``day_i_labels.npy`` headers. Memory is bounded by ``--chunk_rows`` plus
``--bucket_rows`` rows.
"""

import argparse
import os
import sys
import time
from typing import Dict, List

from recsys_lib.datasets._criteo_constants import DAYS
from recsys_lib.datasets.criteo import BinaryCriteoUtils, shuffle_chunked
from recsys_lib.datasets.utils import PATH_MANAGER_KEY


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Shuffle the Criteo training days.")
    parser.add_argument("--input_dir_labels_and_dense", type=str, required=True)
    parser.add_argument("--input_dir_sparse", type=str, required=True)
    parser.add_argument("--output_dir_shuffled", type=str, required=True)
    parser.add_argument("--output_dir_full_set", type=str, default=None)
    parser.add_argument("--random_seed", type=int, default=0)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--chunk_rows", type=int, default=1 << 18)
    parser.add_argument("--bucket_rows", type=int, default=1 << 22)
    parser.add_argument("--no_progress", action="store_true", help="disable progress bars")
    return parser.parse_args(argv)


def count_rows(rows_per_file: Dict[int, int], path: str, day: int) -> None:
    """Store the number of rows of ``<path>/day_<day>_labels.npy`` in ``rows_per_file[day]`` (header read only)."""
    labels = os.path.join(path, f"day_{day}_labels.npy")
    rows = BinaryCriteoUtils.get_shape_from_npy(labels, path_manager_key=PATH_MANAGER_KEY)[0]
    rows_per_file[day] = rows
    print(f"counted {rows} for {labels}")


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    rows_per_day: Dict[int, int] = {}
    for d in range(args.days):
        count_rows(rows_per_day, args.input_dir_labels_and_dense, d)
    t0 = time.perf_counter()
    shuffle_chunked(
        args.input_dir_labels_and_dense, args.input_dir_sparse, args.output_dir_shuffled, rows_per_day,
        output_dir_full_set=args.output_dir_full_set, days=args.days, random_seed=args.random_seed,
        chunk_rows=args.chunk_rows, bucket_rows=args.bucket_rows, progress=not args.no_progress,
    )
    rows = sum(rows_per_day.values())
    dt = time.perf_counter() - t0
    print(f"shuffled {rows} rows in {dt:.1f} s ({rows / max(dt, 1e-9):,.0f} rows/s) into {args.output_dir_shuffled}")


if __name__ == "__main__":
    main(sys.argv[1:])
