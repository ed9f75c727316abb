"""Command line: build the quantized, scripted DLRM predict module and save it (TorchScript) for C++ serving.

    python -m recsys_lib.inference.dlrm_packager --num_embeddings 1000 --output_path /tmp/dlrm.pt
"""

import argparse
import sys
from typing import List

from recsys_lib.inference.dlrm_predict import (
    DEFAULT_CAT_NAMES,
    DEFAULT_INT_NAMES,
    DLRMModelConfig,
    DLRMPredictFactory,
    create_training_batch,
)


def parse_args(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="recsys_lib dlrm model packager")
    parser.add_argument("--num_embeddings", type=int, default=100_000,
                        help="rows of every table (overrides --num_embeddings_per_feature when given)")
    parser.add_argument("--num_embeddings_per_feature", type=str,
                        default="45833188,36746,17245,7413,20243,3,7114,1441,62,29275261,1572176,345138,"
                        "10,2209,11267,128,4,974,14,48937457,11316796,40094537,452104,12606,104,35",
                        help="comma-separated rows per sparse feature (26 for Criteo)")
    parser.add_argument("--sparse_feature_names", type=str, default=",".join(DEFAULT_CAT_NAMES),
                        help="comma-separated sparse feature names")
    parser.add_argument("--dense_arch_layer_sizes", type=str, default="512,256,64")
    parser.add_argument("--over_arch_layer_sizes", type=str, default="512,512,256,1")
    parser.add_argument("--embedding_dim", type=int, default=64)
    parser.add_argument("--num_dense_features", type=int, default=len(DEFAULT_INT_NAMES))
    parser.add_argument("--output_path", type=str, help="where the TorchScript module is written")
    return parser.parse_args(argv)


def main(argv: List[str]) -> None:
    """Package the DLRM: quantize (INT8), fx-trace, script, save to ``--output_path``."""
    args = parse_args(argv)
    args.batch_size = 10
    args.num_embedding_features = 26
    batch = create_training_batch(args)
    config = DLRMModelConfig(
        dense_arch_layer_sizes=[int(x) for x in args.dense_arch_layer_sizes.split(",")],
        dense_in_features=args.num_dense_features,
        embedding_dim=args.embedding_dim,
        id_list_features_keys=args.sparse_feature_names.split(","),
        num_embeddings_per_feature=[int(x) for x in args.num_embeddings_per_feature.split(",")],
        num_embeddings=args.num_embeddings,
        over_arch_layer_sizes=[int(x) for x in args.over_arch_layer_sizes.split(",")],
        sample_input=batch,
    )
    scripted = DLRMPredictFactory(config).create_predict_module(world_size=1, device="cpu")
    scripted.save(args.output_path)
    print("Package is saved to " + str(args.output_path))


if __name__ == "__main__":
    main(sys.argv[1:])
