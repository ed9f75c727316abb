"""Public names and pinned signatures of recsys_lib.datasets (TorchRec's torchrec.datasets)."""

from tests.public_api import REQUIRED

_U = "recsys_lib.datasets.utils"
_C = "recsys_lib.datasets.criteo"
_R = "recsys_lib.datasets.random"
_M = "recsys_lib.datasets.movielens"

NAMES = [
    *[("recsys_lib.datasets", m) for m in ("criteo", "movielens", "random", "utils")],
    *[(_U, n) for n in (
        "Batch", "PATH_MANAGER_KEY", "LoadFiles", "ReadLinesFromCSV", "Limit", "ParallelReadConcat",
        "rand_split_train_val", "idx_split_train_val", "train_filter", "val_filter", "safe_cast",
    )],
    *[(_R, n) for n in ("RandomRecDataset", "_RandomRecBatch", "RandomRecBatch")],
    *[(_C, n) for n in (
        "INT_FEATURE_COUNT", "CAT_FEATURE_COUNT", "DAYS", "DEFAULT_LABEL_NAME", "DEFAULT_INT_NAMES",
        "DEFAULT_CAT_NAMES", "DEFAULT_COLUMN_NAMES", "TOTAL_TRAINING_SAMPLES", "FREQUENCY_THRESHOLD",
        "COLUMN_TYPE_CASTERS", "criteo_kaggle", "criteo_terabyte", "CriteoIterDataPipe", "BinaryCriteoUtils",
        "InMemoryBinaryCriteoIterDataPipe",
    )],
    *[(_M, n) for n in (
        "movielens_20m", "movielens_25m", "RATINGS_FILENAME", "MOVIES_FILENAME", "DEFAULT_RATINGS_COLUMN_NAMES",
        "DEFAULT_MOVIES_COLUMN_NAMES", "DEFAULT_COLUMN_NAMES",
    )],
    ("recsys_lib.datasets.scripts.npy_preproc_criteo", "main"),
    ("recsys_lib.datasets.scripts.contiguous_preproc_criteo", "main"),
    ("recsys_lib.datasets.scripts.shuffle_preproc_criteo", "main"),
]

SIGNATURES = [
    (_U, "Batch", [("dense_features", REQUIRED), ("sparse_features", REQUIRED), ("labels", REQUIRED)]),
    (_U, "Batch.to", [("self", REQUIRED), ("device", REQUIRED), ("non_blocking", False)]),
    (_U, "Batch.record_stream", [("self", REQUIRED), ("stream", REQUIRED)]),
    (_U, "Batch.pin_memory", [("self", REQUIRED)]),
    (_U, "LoadFiles", [("datapipe", REQUIRED), ("mode", "b"), ("length", -1), ("path_manager_key", "torchrec")]),
    (_U, "ReadLinesFromCSV", [("datapipe", REQUIRED), ("skip_first_line", False)]),
    (_U, "rand_split_train_val", [("datapipe", REQUIRED), ("train_perc", REQUIRED), ("random_seed", 0)]),
    (_U, "idx_split_train_val", [("datapipe", REQUIRED), ("train_perc", REQUIRED), ("decimal_places", 2)]),
    (_U, "safe_cast", [("val", REQUIRED), ("dest_type", REQUIRED), ("default", REQUIRED)]),
    (_R, "RandomRecDataset", [
        ("keys", REQUIRED), ("batch_size", REQUIRED), ("hash_size", None), ("hash_sizes", None),
        ("ids_per_feature", None), ("ids_per_features", None), ("num_dense", 50), ("manual_seed", None),
        ("num_batches", None), ("num_generated_batches", 10), ("min_ids_per_feature", None),
        ("min_ids_per_features", None),
    ]),
    (_C, "criteo_kaggle", [("path", REQUIRED)]),
    (_C, "criteo_terabyte", [("paths", REQUIRED)]),
    (_C, "CriteoIterDataPipe", [("paths", REQUIRED)]),
    (_C, "BinaryCriteoUtils.tsv_to_npys", [
        ("in_file", REQUIRED), ("out_dense_file", REQUIRED), ("out_sparse_file", REQUIRED),
        ("out_labels_file", REQUIRED), ("dataset_name", "criteo_1tb"), ("path_manager_key", "torchrec"),
    ]),
    (_C, "BinaryCriteoUtils.get_shape_from_npy", [("path", REQUIRED), ("path_manager_key", "torchrec")]),
    (_C, "BinaryCriteoUtils.get_file_row_ranges_and_remainder", [
        ("lengths", REQUIRED), ("rank", REQUIRED), ("world_size", REQUIRED), ("start_row", 0), ("last_row", None),
    ]),
    (_C, "BinaryCriteoUtils.load_npy_range", [
        ("fname", REQUIRED), ("start_row", REQUIRED), ("num_rows", REQUIRED), ("path_manager_key", "torchrec"),
        ("mmap_mode", False),
    ]),
    (_C, "BinaryCriteoUtils.sparse_to_contiguous", [
        ("in_files", REQUIRED), ("output_dir", REQUIRED), ("frequency_threshold", 3), ("columns", 26),
        ("path_manager_key", "torchrec"), ("output_file_suffix", "_contig_freq.npy"),
    ]),
    (_C, "BinaryCriteoUtils.shuffle", [
        ("input_dir_labels_and_dense", REQUIRED), ("input_dir_sparse", REQUIRED), ("output_dir_shuffled", REQUIRED),
        ("rows_per_day", REQUIRED), ("output_dir_full_set", None), ("days", 24), ("int_columns", 13),
        ("sparse_columns", 26), ("path_manager_key", "torchrec"), ("random_seed", 0),
    ]),
    (_C, "InMemoryBinaryCriteoIterDataPipe", [
        ("stage", REQUIRED), ("dense_paths", REQUIRED), ("sparse_paths", REQUIRED), ("labels_paths", REQUIRED),
        ("batch_size", REQUIRED), ("rank", REQUIRED), ("world_size", REQUIRED), ("drop_last", False),
        ("shuffle_batches", False), ("shuffle_training_set", False), ("shuffle_training_set_random_seed", 0),
        ("mmap_mode", False), ("hashes", None), ("path_manager_key", "torchrec"),
    ]),
    (_M, "movielens_20m", [("root", REQUIRED)]),
    (_M, "movielens_25m", [("root", REQUIRED)]),
]
