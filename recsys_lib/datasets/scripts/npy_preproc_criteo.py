"""Criteo TSV → ``.npy`` (step 1 of the DLRM preprocessing).

    python -m recsys_lib.datasets.scripts.npy_preproc_criteo --input_dir /data/criteo_tsv --output_dir /data/npy

1TB: reads ``day_0`` .. ``day_23``; Kaggle (``--dataset_name criteo_kaggle``): ``train.txt`` (and ``test.txt``
when present). Writes ``<name>_dense.npy``, ``<name>_sparse.npy``, ``<name>_labels.npy`` per input. Days whose
three outputs already exist are skipped, so an interrupted run resumes where it stopped.
"""

import argparse
import os
import sys
import time
from typing import List, Tuple

from recsys_lib.datasets._criteo_constants import DAYS
from recsys_lib.datasets.criteo import npy_output_paths, tsv_to_npys_chunked
from recsys_lib.datasets.utils import PATH_MANAGER_KEY, get_path_manager


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Criteo TSV to npy preprocessing.")
    parser.add_argument("--input_dir", type=str, required=True, help="folder with the TSV files")
    parser.add_argument("--output_dir", type=str, required=True, help="folder for the .npy files")
    parser.add_argument("--dataset_name", type=str, choices=["criteo_1tb", "criteo_kaggle"], default="criteo_1tb")
    parser.add_argument("--chunk_rows", type=int, default=1 << 14, help="rows parsed per chunk (bounds memory)")
    parser.add_argument("--no_progress", action="store_true", help="disable progress bars")
    return parser.parse_args(argv)


def input_names(input_dir: str, dataset_name: str, path_manager_key: str = PATH_MANAGER_KEY) -> List[Tuple[str, str]]:
    """``[(TSV path, output name)]`` for the dataset."""
    if dataset_name == "criteo_1tb":
        return [(os.path.join(input_dir, f"day_{i}"), f"day_{i}") for i in range(DAYS)]
    pm = get_path_manager(path_manager_key)
    names = [("train.txt", "train")]
    if pm.exists(os.path.join(input_dir, "test.txt")):
        names.append(("test.txt", "test"))
    return [(os.path.join(input_dir, f), n) for f, n in names]


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    pm = get_path_manager(PATH_MANAGER_KEY)
    pm.mkdirs(args.output_dir)
    total_rows, t0 = 0, time.perf_counter()
    for in_file, name in input_names(args.input_dir, args.dataset_name):
        outs = npy_output_paths(args.output_dir, name)
        if all(pm.exists(p) for p in outs):
            print(f"{name}: already converted, skipping")
            continue
        if not pm.exists(in_file):
            raise FileNotFoundError(f"{in_file} does not exist (expected by --dataset_name {args.dataset_name})")
        total_rows += tsv_to_npys_chunked(
            in_file, *outs, dataset_name=args.dataset_name, chunk_rows=args.chunk_rows, progress=not args.no_progress
        )
    dt = time.perf_counter() - t0
    print(f"converted {total_rows} rows in {dt:.1f} s ({total_rows / max(dt, 1e-9):,.0f} rows/s) into {args.output_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
