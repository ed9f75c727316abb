"""Remaps the sparse ids of ``*_sparse.npy`` files to contiguous ids per feature (step 2).

    python -m recsys_lib.datasets.scripts.contiguous_preproc_criteo --input_dir /data/npy \
        --output_dir /data/contig --frequency_threshold 3

Writes ``<name>_sparse_contig_freq.npy`` per input. Ids seen fewer than ``--frequency_threshold`` times over
all files share id 1; kept ids are numbered 2, 3, ... by first appearance. Finished outputs are skipped on a rerun.
"""

import argparse
import os
import sys
import time
from typing import List

from recsys_lib.datasets.criteo import sparse_to_contiguous_chunked
from recsys_lib.datasets.utils import PATH_MANAGER_KEY, get_path_manager


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Map Criteo sparse ids to contiguous ids.")
    parser.add_argument("--input_dir", type=str, required=True, help="folder with the *_sparse.npy files")
    parser.add_argument("--output_dir", type=str, required=True, help="folder for the remapped files")
    parser.add_argument("--frequency_threshold", type=int, default=0,
                        help="ids seen fewer times than this map to 1 (0: no thresholding)")
    parser.add_argument("--chunk_rows", type=int, default=1 << 18, help="rows per chunk (bounds memory)")
    parser.add_argument("--no_progress", action="store_true", help="disable progress bars")
    return parser.parse_args(argv)


def main(argv: List[str]) -> None:
    args = parse_args(argv)
    pm = get_path_manager(PATH_MANAGER_KEY)
    in_files = sorted(os.path.join(args.input_dir, f) for f in pm.ls(args.input_dir) if f.endswith("_sparse.npy"))
    if not in_files:
        raise FileNotFoundError(f"no *_sparse.npy files in {args.input_dir}")
    t0 = time.perf_counter()
    sparse_to_contiguous_chunked(
        in_files, args.output_dir, frequency_threshold=args.frequency_threshold,
        chunk_rows=args.chunk_rows, progress=not args.no_progress,
    )
    print(f"remapped {len(in_files)} files in {time.perf_counter() - t0:.1f} s into {args.output_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
