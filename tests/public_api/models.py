"""Public names and signatures of ``recsys_lib.models`` (``torchrec.models.dlrm`` / ``.deepfm``)."""

from tests.public_api import REQUIRED

_DLRM = "recsys_lib.models.dlrm"
_DEEPFM = "recsys_lib.models.deepfm"

NAMES = [
    ("recsys_lib.models", "dlrm"),
    ("recsys_lib.models", "deepfm"),
    *[(_DLRM, n) for n in (
        "SparseArch", "DenseArch", "InteractionArch", "InteractionDCNArch", "InteractionProjectionArch",
        "OverArch", "DLRM", "DLRM_DCN", "DLRM_Projection", "DLRMTrain", "choose",
    )],
    *[(_DEEPFM, n) for n in ("SparseArch", "DenseArch", "FMInteractionArch", "OverArch", "SimpleDeepFMNN")],
]

_DLRM_HEAD = [
    ("embedding_bag_collection", REQUIRED), ("dense_in_features", REQUIRED),
    ("dense_arch_layer_sizes", REQUIRED), ("over_arch_layer_sizes", REQUIRED),
]

SIGNATURES = [
    (_DLRM, "SparseArch", [("embedding_bag_collection", REQUIRED)]),
    (_DLRM, "DenseArch", [("in_features", REQUIRED), ("layer_sizes", REQUIRED), ("device", None)]),
    (_DLRM, "InteractionArch", [("num_sparse_features", REQUIRED)]),
    (_DLRM, "InteractionDCNArch", [("num_sparse_features", REQUIRED), ("crossnet", REQUIRED)]),
    (_DLRM, "InteractionProjectionArch", [
        ("num_sparse_features", REQUIRED), ("interaction_branch1", REQUIRED), ("interaction_branch2", REQUIRED),
    ]),
    (_DLRM, "OverArch", [("in_features", REQUIRED), ("layer_sizes", REQUIRED), ("device", None)]),
    (_DLRM, "DLRM", _DLRM_HEAD + [("dense_device", None)]),
    (_DLRM, "DLRM.forward", [("self", REQUIRED), ("dense_features", REQUIRED), ("sparse_features", REQUIRED)]),
    (_DLRM, "DLRM_DCN", _DLRM_HEAD + [
        ("dcn_num_layers", REQUIRED), ("dcn_low_rank_dim", REQUIRED), ("dense_device", None),
    ]),
    (_DLRM, "DLRM_Projection", _DLRM_HEAD + [
        ("interaction_branch1_layer_sizes", REQUIRED), ("interaction_branch2_layer_sizes", REQUIRED),
        ("dense_device", None),
    ]),
    (_DLRM, "DLRMTrain", [("dlrm_module", REQUIRED)]),
    (_DLRM, "DLRMTrain.forward", [("self", REQUIRED), ("batch", REQUIRED)]),
    (_DLRM, "choose", [("n", REQUIRED), ("k", REQUIRED)]),
    (_DEEPFM, "SparseArch", [("embedding_bag_collection", REQUIRED)]),
    (_DEEPFM, "DenseArch", [("in_features", REQUIRED), ("hidden_layer_size", REQUIRED), ("embedding_dim", REQUIRED)]),
    (_DEEPFM, "FMInteractionArch", [
        ("fm_in_features", REQUIRED), ("sparse_feature_names", REQUIRED), ("deep_fm_dimension", REQUIRED),
    ]),
    (_DEEPFM, "OverArch", [("in_features", REQUIRED)]),
    (_DEEPFM, "SimpleDeepFMNN", [
        ("num_dense_features", REQUIRED), ("embedding_bag_collection", REQUIRED),
        ("hidden_layer_size", REQUIRED), ("deep_fm_dimension", REQUIRED),
    ]),
    (_DEEPFM, "SimpleDeepFMNN.forward", [("self", REQUIRED), ("dense_features", REQUIRED), ("sparse_features", REQUIRED)]),
]

NAMES += [
    (_DEEPFM, "SimpleDeepFMNNWrapper"),
    ("recsys_lib.models.dlrm", "DLRMWrapper"),
    ("recsys_lib.models.experimental.transformerdlrm", "InteractionTransformerArch"),
    ("recsys_lib.models.experimental.transformerdlrm", "DLRM_Transformer"),
    ("recsys_lib.models.cuda_graph_utils", "build_dlrm"),
    ("recsys_lib.models.cuda_graph_benchmark", "main"),
]
SIGNATURES += [
    ("recsys_lib.models.dlrm", "DLRM.compile_dense_path", [("self", REQUIRED), ("compile_mode", "reduce-overhead")]),
]
