"""Public names of the dense modules: mlp, activation, crossnet, deepfm (``torchrec.modules.*``)."""

import torch

from tests.public_api import REQUIRED

NAMES = [
    ("recsys_lib.modules.mlp", "MLP"),
    ("recsys_lib.modules.mlp", "Perceptron"),
    ("recsys_lib.modules.activation", "SwishLayerNorm"),
    ("recsys_lib.modules.crossnet", "CrossNet"),
    ("recsys_lib.modules.crossnet", "LowRankCrossNet"),
    ("recsys_lib.modules.crossnet", "VectorCrossNet"),
    ("recsys_lib.modules.crossnet", "LowRankMixtureCrossNet"),
    ("recsys_lib.modules.deepfm", "DeepFM"),
    ("recsys_lib.modules.deepfm", "FactorizationMachine"),
]

SIGNATURES = [
    ("recsys_lib.modules.mlp", "MLP", [
        ("in_size", REQUIRED), ("layer_sizes", REQUIRED), ("bias", True), ("activation", torch.relu),
        ("device", None), ("dtype", torch.float32), ("activation_on_last", True),
    ]),
    ("recsys_lib.modules.mlp", "Perceptron", [
        ("in_size", REQUIRED), ("out_size", REQUIRED), ("bias", True), ("activation", torch.relu),
        ("device", None), ("dtype", torch.float32),
    ]),
    ("recsys_lib.modules.activation", "SwishLayerNorm", [("input_dims", REQUIRED), ("device", None)]),
    ("recsys_lib.modules.crossnet", "CrossNet", [("in_features", REQUIRED), ("num_layers", REQUIRED)]),
    ("recsys_lib.modules.crossnet", "LowRankCrossNet", [
        ("in_features", REQUIRED), ("num_layers", REQUIRED), ("low_rank", 1),
    ]),
    ("recsys_lib.modules.crossnet", "VectorCrossNet", [("in_features", REQUIRED), ("num_layers", REQUIRED)]),
    ("recsys_lib.modules.crossnet", "LowRankMixtureCrossNet", [
        ("in_features", REQUIRED), ("num_layers", REQUIRED), ("num_experts", 1), ("low_rank", 1),
        ("activation", torch.relu),
    ]),
    ("recsys_lib.modules.deepfm", "DeepFM", [("dense_module", REQUIRED)]),
    ("recsys_lib.modules.deepfm", "FactorizationMachine", []),
    ("recsys_lib.modules.mlp", "MLP.forward", [("self", REQUIRED), ("input", REQUIRED)]),
    ("recsys_lib.modules.crossnet", "CrossNet.forward", [("self", REQUIRED), ("input", REQUIRED)]),
    ("recsys_lib.modules.deepfm", "DeepFM.forward", [("self", REQUIRED), ("embeddings", REQUIRED)]),
    ("recsys_lib.modules.deepfm", "FactorizationMachine.forward", [("self", REQUIRED), ("embeddings", REQUIRED)]),
]
