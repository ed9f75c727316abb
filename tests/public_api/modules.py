from tests.public_api import REQUIRED

_CFG = "recsys_lib.modules.embedding_configs"

NAMES = [
    ("recsys_lib.modules", "embedding_configs"),
] + [
    (_CFG, n)
    for n in [
        "PoolingType", "ShardingType", "DataType", "BaseEmbeddingConfig", "EmbeddingBagConfig", "EmbeddingConfig",
        "EmbeddingTableConfig", "QuantConfig", "data_type_to_dtype", "dtype_to_data_type", "data_type_to_sparse_type",
        "pooling_type_to_pooling_mode", "pooling_type_to_str", "DATA_TYPE_NUM_BITS", "VirtualTableEvictionPolicy",
        "NoEvictionPolicy", "CountBasedEvictionPolicy", "TimestampBasedEvictionPolicy",
        "CountTimestampMixedEvictionPolicy", "FeatureL2NormBasedEvictionPolicy", "FeatureScoreBasedEvictionPolicy",
        "FeatureScoreMapping",
    ]
]

from recsys_lib.types import DataType  # noqa: E402

# Dataclass fields past data_type use default factories (shown as <factory>), so pin the leading ones.
_CFG_HEAD = [("num_embeddings", REQUIRED), ("embedding_dim", REQUIRED), ("name", ""), ("data_type", DataType.FP32)]


SIGNATURES = [
    (_CFG, "EmbeddingBagConfig", _CFG_HEAD),
    (_CFG, "EmbeddingConfig", _CFG_HEAD),
    (_CFG, "EmbeddingTableConfig", _CFG_HEAD),
    (_CFG, "pooling_type_to_pooling_mode", [("pooling_type", REQUIRED), ("sharding_type", None)]),
    (_CFG, "pooling_type_to_str", [("pooling_type", REQUIRED)]),
    (_CFG, "data_type_to_dtype", [("data_type", REQUIRED)]),
    (_CFG, "data_type_to_sparse_type", [("data_type", REQUIRED)]),
    (_CFG, "dtype_to_data_type", [("dtype", REQUIRED)]),
]

_EM = "recsys_lib.modules.embedding_modules"
_FEM = "recsys_lib.modules.fused_embedding_modules"

NAMES += [
    ("recsys_lib.modules", "embedding_modules"),
    (_EM, "EmbeddingBagCollection"),
    (_EM, "EmbeddingBagCollectionInterface"),
    (_EM, "EmbeddingCollection"),
    (_EM, "EmbeddingCollectionInterface"),
    (_EM, "get_embedding_names_by_table"),
    (_EM, "process_pooled_embeddings"),
    (_EM, "reorder_inverse_indices"),
    (_FEM, "FusedEmbeddingBagCollection"),
    (_FEM, "FusedEmbeddingCollection"),
    (_FEM, "fuse_embedding_optimizer"),
    (_FEM, "convert_optimizer_type_and_kwargs"),
]

SIGNATURES += [
    (_EM, "EmbeddingBagCollection", [("tables", REQUIRED), ("is_weighted", False), ("device", None)]),
    (_EM, "EmbeddingBagCollection.forward", [("self", REQUIRED), ("features", REQUIRED)]),
    (_EM, "EmbeddingBagCollection.embedding_bag_configs", [("self", REQUIRED)]),
    (_EM, "EmbeddingBagCollection.is_weighted", [("self", REQUIRED)]),
    (_EM, "EmbeddingBagCollection.reset_parameters", [("self", REQUIRED)]),
    (_EM, "EmbeddingCollection", [("tables", REQUIRED), ("device", None), ("need_indices", False),
                                  ("use_gather_select", False), ("use_gather_select_per_sharding", None)]),
    (_EM, "EmbeddingCollection.forward", [("self", REQUIRED), ("features", REQUIRED)]),
    (_EM, "EmbeddingCollection.need_indices", [("self", REQUIRED)]),
    (_EM, "EmbeddingCollection.embedding_dim", [("self", REQUIRED)]),
    (_EM, "EmbeddingCollection.embedding_configs", [("self", REQUIRED)]),
    (_EM, "EmbeddingCollection.embedding_names_by_table", [("self", REQUIRED)]),
    (_EM, "get_embedding_names_by_table", [("tables", REQUIRED)]),
    (_EM, "process_pooled_embeddings", [("pooled_embeddings", REQUIRED), ("inverse_indices", REQUIRED)]),
    (_EM, "reorder_inverse_indices", [("inverse_indices", REQUIRED), ("feature_names", REQUIRED)]),
    (_FEM, "FusedEmbeddingBagCollection", [("tables", REQUIRED), ("optimizer_type", REQUIRED),
                                           ("optimizer_kwargs", REQUIRED), ("is_weighted", False), ("device", None),
                                           ("location", None)]),
    (_FEM, "FusedEmbeddingCollection", [("tables", REQUIRED), ("optimizer_type", REQUIRED),
                                        ("optimizer_kwargs", REQUIRED), ("device", None), ("need_indices", False),
                                        ("location", None)]),
    (_FEM, "fuse_embedding_optimizer", [("model", REQUIRED), ("optimizer_type", REQUIRED),
                                        ("optimizer_kwargs", REQUIRED), ("device", REQUIRED), ("location", None)]),
]

NAMES += [("recsys_lib", n) for n in ["EmbeddingBagConfig", "EmbeddingConfig", "PoolingType", "EmbeddingBagCollection",
                                      "EmbeddingBagCollectionInterface", "EmbeddingCollection"]]

_FP = "recsys_lib.modules.feature_processor"
_FP_ = "recsys_lib.modules.feature_processor_"
_FPE = "recsys_lib.modules.fp_embedding_modules"
_U = "recsys_lib.modules.utils"

NAMES += [
    ("recsys_lib.modules", "feature_processor"),
    ("recsys_lib.modules", "embedding_tower"),
    ("recsys_lib.modules", "lazy_extension"),
    (_FP, "BaseFeatureProcessor"), (_FP, "PositionWeightedModule"), (_FP, "BaseGroupedFeatureProcessor"),
    (_FP, "PositionWeightedProcessor"), (_FP, "position_weighted_module_update_features"),
    (_FP_, "FeatureProcessor"), (_FP_, "FeatureProcessorsCollection"), (_FP_, "PositionWeightedModule"),
    (_FP_, "PositionWeightedModuleCollection"),
    (_FPE, "FeatureProcessedEmbeddingBagCollection"),
    ("recsys_lib.modules.regroup", "KTRegroupAsDict"),
    ("recsys_lib.modules.lazy_extension", "LazyModuleExtensionMixin"),
    ("recsys_lib.modules.lazy_extension", "lazy_apply"),
    ("recsys_lib.modules.embedding_tower", "EmbeddingTower"),
    ("recsys_lib.modules.embedding_tower", "EmbeddingTowerCollection"),
    ("recsys_lib.modules.embedding_tower", "tower_input_params"),
] + [(_U, n) for n in [
    "construct_jagged_tensors", "construct_jagged_tensors_inference", "construct_modulelist_from_single_module",
    "convert_list_of_modules_to_modulelist", "extract_module_or_tensor_callable", "get_module_output_dimension",
    "check_module_output_dimension", "init_mlp_weights_xavier_uniform", "jagged_index_select_with_empty",
    "deterministic_dedup",
]]

SIGNATURES += [
    (_FP, "PositionWeightedModule", [("max_feature_lengths", REQUIRED), ("device", None)]),
    (_FP, "PositionWeightedProcessor", [("max_feature_lengths", REQUIRED), ("device", None)]),
    (_FP_, "PositionWeightedModule", [("max_feature_length", REQUIRED), ("device", None)]),
    (_FP_, "PositionWeightedModuleCollection", [("max_feature_lengths", REQUIRED), ("device", None)]),
    (_FPE, "FeatureProcessedEmbeddingBagCollection", [("embedding_bag_collection", REQUIRED),
                                                      ("feature_processors", REQUIRED)]),
    ("recsys_lib.modules.regroup", "KTRegroupAsDict", [("groups", REQUIRED), ("keys", REQUIRED),
                                                       ("emb_dtype", None), ("multi_device", False)]),
    ("recsys_lib.modules.regroup", "KTRegroupAsDict.forward", [("self", REQUIRED), ("keyed_tensors", REQUIRED)]),
    ("recsys_lib.modules.lazy_extension", "lazy_apply", [("module", REQUIRED), ("fn", REQUIRED)]),
    ("recsys_lib.modules.embedding_tower", "EmbeddingTower", [("embedding_module", REQUIRED),
                                                              ("interaction_module", REQUIRED), ("device", None)]),
    ("recsys_lib.modules.embedding_tower", "EmbeddingTowerCollection", [("towers", REQUIRED), ("device", None)]),
    ("recsys_lib.modules.embedding_tower", "EmbeddingTowerCollection.forward",
     [("self", REQUIRED), ("features", None), ("weighted_features", None)]),
    (_U, "construct_jagged_tensors", [("embeddings", REQUIRED), ("features", REQUIRED), ("embedding_names", REQUIRED),
                                      ("need_indices", False), ("features_to_permute_indices", None),
                                      ("original_features", None), ("reverse_indices", None)]),
    (_U, "jagged_index_select_with_empty", [("values", REQUIRED), ("ids", REQUIRED), ("offsets", REQUIRED),
                                            ("output_offsets", REQUIRED)]),
    (_U, "deterministic_dedup", [("ids", REQUIRED)]),
]

# TorchRec 1.8.0 names added by the conformance work (issue 12)
NAMES += [
    ("recsys_lib.modules.debug_embedding_modules", "DebugEmbeddingCollection"),
    ("recsys_lib.modules.debug_embedding_modules", "DebugEmbeddingBagCollection"),
    ("recsys_lib.modules.pruning_logger", "PruningLogBase"),
    ("recsys_lib.modules.pruning_logger", "PruningLogger"),
    ("recsys_lib.modules.pruning_logger", "PruningLoggerDefault"),
    ("recsys_lib.modules.regroup", "PermuteMultiEmbedding"),
    ("recsys_lib.modules.regroup", "module_init"),
    (_U, "SequenceVBEContext"),
    (_U, "reset_module_states_post_sharding"),
    (_U, "make_hash_zch_buckets_non_persistent"),
    ("recsys_lib.modules.fp_embedding_modules", "apply_feature_processors_to_kjt"),
    ("recsys_lib.modules.fp_embedding_modules", "FeatureProcessorDictWrapper"),
    ("recsys_lib.modules.feature_processor", "offsets_to_range_traceble"),
    ("recsys_lib.modules.feature_processor_", "get_weights_list"),
    ("recsys_lib.modules.feature_processor_", "get_stride_per_key_per_rank"),
    (_FEM, "EmbeddingFusedOptimizer"),
]
SIGNATURES += [
    (_U, "construct_jagged_tensors", [("embeddings", REQUIRED), ("features", REQUIRED), ("embedding_names", REQUIRED),
                                      ("need_indices", False), ("features_to_permute_indices", None),
                                      ("original_features", None), ("reverse_indices", None), ("seq_vbe_ctx", None),
                                      ("use_gather_select", False)]),
    ("recsys_lib.modules.debug_embedding_modules", "DebugEmbeddingBagCollection",
     [("tables", REQUIRED), ("device", REQUIRED), ("debug_mode", False)]),
    (_FEM, "EmbeddingFusedOptimizer", [("tables", REQUIRED), ("emb_module", REQUIRED)]),
]
