"""torchrec.quant / torchrec.inference / torchrec.tensor_types names and signatures (TorchRec 1.8.0)."""

import torch

from tests.public_api import REQUIRED

_Q = "recsys_lib.quant.embedding_modules"
_I = "recsys_lib.inference.modules"

NAMES = [
    ("recsys_lib", "quant"),
    ("recsys_lib.quant", "EmbeddingBagCollection"),
    *[(_Q, n) for n in [
        "EmbeddingBagCollection", "EmbeddingCollection", "FeatureProcessedEmbeddingBagCollection",
        "DATA_TYPE_NUM_BITS", "DEFAULT_ROW_ALIGNMENT", "MODULE_ATTR_REGISTER_TBES_BOOL",
        "MODULE_ATTR_QUANT_STATE_DICT_SPLIT_SCALE_BIAS", "MODULE_ATTR_ROW_ALIGNMENT_INT",
        "MODULE_ATTR_EMB_CONFIG_NAME_TO_NUM_ROWS_POST_PRUNING_DICT", "MODULE_ATTR_REMOVE_STBE_PADDING_BOOL",
        "MODULE_ATTR_USE_UNFLATTENED_LENGTHS_FOR_BATCHING", "MODULE_ATTR_USE_BATCHING_HINTED_OUTPUT",
        "MODULE_ATTR_CACHE_FEATURES_ORDER", "for_each_module_of_type_do",
        "quant_prep_enable_quant_state_dict_split_scale_bias",
        "quant_prep_enable_quant_state_dict_split_scale_bias_for_types", "quant_prep_enable_register_tbes",
        "quant_prep_customize_row_alignment", "quant_prep_enable_cache_features_order", "quantize_state_dict",
    ]],
    *[("recsys_lib.quant.utils", n) for n in ["populate_fx_names", "recursive_populate_fx_names",
                                              "meta_to_cpu_placement"]],
    *[("recsys_lib.tensor_types", n) for n in ["UIntXTensor", "UInt4Tensor", "UInt2Tensor", "down_size", "up_size"]],
    ("recsys_lib.inference", "modules"),
    ("recsys_lib.inference", "model_packager"),
    *[(_I, n) for n in [
        "trim_torch_package_prefix_from_typename", "DEFAULT_FUSED_PARAMS", "DEFAULT_QUANT_MAPPING",
        "DEFAULT_QUANTIZATION_DTYPE", "FEATURE_PROCESSED_EBC_TYPE", "quantize_feature", "quantize_embeddings",
        "QualNameMetadata", "BatchingMetadata", "PredictFactory", "PredictModule", "quantize_dense",
        "set_pruning_data", "quantize_inference_model", "get_table_to_weights_from_tbe", "assign_weights_to_tbe",
        "FUSED_PARAM_REGISTER_TBE_BOOL", "FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS",
        "FUSED_PARAM_BOUNDS_CHECK_MODE", "FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP", "shard_quant_model",
    ]],
    *[("recsys_lib.distributed.quant_embeddingbag", n) for n in [
        "ShardedQuantEmbeddingBagCollection", "QuantEmbeddingBagCollectionSharder",
        "ShardedQuantFeatureProcessedEmbeddingBagCollection", "QuantFeatureProcessedEmbeddingBagCollectionSharder",
        "create_infer_embedding_bag_sharding",
    ]],
    *[("recsys_lib.distributed.quant_embedding", n) for n in [
        "ShardedQuantEmbeddingCollection", "QuantEmbeddingCollectionSharder", "create_infer_embedding_sharding",
    ]],
    *[("recsys_lib.distributed.infer_utils", n) for n in [
        "get_tbes_from_sharded_module", "get_tbe_specs_from_sharded_module", "get_path_device_tuples",
        "get_all_torchrec_modules", "get_non_scriptable_trec_module",
    ]],
    ("recsys_lib.distributed.quant_embedding_kernel", "QuantBatchedEmbeddingBag"),
    ("recsys_lib.distributed.quant_embedding_kernel", "QuantBatchedEmbedding"),
    ("recsys_lib.distributed.sharding.tw_sharding", "InferTwEmbeddingSharding"),
    ("recsys_lib.distributed.sharding.rw_sharding", "InferRwPooledEmbeddingSharding"),
    ("recsys_lib.distributed.sharding.cw_sharding", "InferCwPooledEmbeddingSharding"),
    ("recsys_lib.distributed.sharding.tw_sequence_sharding", "InferTwSequenceEmbeddingSharding"),
    ("recsys_lib.distributed.sharding.rw_sequence_sharding", "InferRwSequenceEmbeddingSharding"),
    ("recsys_lib.distributed.sharding.cw_sequence_sharding", "InferCwSequenceEmbeddingSharding"),
    *[("recsys_lib.inference.state_dict_transform", n) for n in ["state_dict_gather", "state_dict_all_gather_keys",
                                                                 "state_dict_to_device"]],
    *[("recsys_lib.inference.model_packager", n) for n in ["PredictFactoryPackager", "load_config_text",
                                                           "load_pickle_config", "LOADER_MODULE", "LOADER_FACTORY",
                                                           "LOADER_CODE", "CONFIG_MODULE"]],
    *[("recsys_lib.inference.dlrm_predict", n) for n in ["DLRMModelConfig", "DLRMPredictModule", "DLRMPredictFactory",
                                                         "create_training_batch", "DEFAULT_CAT_NAMES",
                                                         "DEFAULT_INT_NAMES"]],
    *[("recsys_lib.inference.dlrm_packager", n) for n in ["parse_args", "main"]],
]

_QUANT_TAIL = [("table_name_to_quantized_weights", None), ("register_tbes", False),
               ("quant_state_dict_split_scale_bias", False), ("row_alignment", 16)]

SIGNATURES = [
    (_Q, "EmbeddingBagCollection", [("tables", REQUIRED), ("is_weighted", REQUIRED), ("device", REQUIRED),
                                    ("output_dtype", torch.float32), *_QUANT_TAIL, ("cache_features_order", False)]),
    (_Q, "FeatureProcessedEmbeddingBagCollection",
     [("tables", REQUIRED), ("is_weighted", REQUIRED), ("device", REQUIRED), ("output_dtype", torch.float32),
      *_QUANT_TAIL, ("feature_processor", None), ("cache_features_order", False)]),
    (_Q, "EmbeddingCollection", [("tables", REQUIRED), ("device", REQUIRED), ("need_indices", False),
                                 ("output_dtype", torch.float32), *_QUANT_TAIL, ("cache_features_order", False)]),
    (_Q, "EmbeddingBagCollection.from_float", [("module", REQUIRED), ("use_precomputed_fake_quant", False)]),
    (_Q, "quantize_state_dict", [("module", REQUIRED), ("table_name_to_quantized_weights", REQUIRED),
                                 ("table_name_to_data_type", REQUIRED),
                                 ("table_name_to_num_embeddings_post_pruning", None)]),
    (_I, "quantize_embeddings", [("module", REQUIRED), ("dtype", REQUIRED), ("inplace", REQUIRED),
                                 ("additional_qconfig_spec_keys", None), ("additional_mapping", None),
                                 ("output_dtype", torch.float32), ("per_table_weight_dtype", None)]),
    (_I, "quantize_inference_model", [("model", REQUIRED), ("quantization_mapping", None),
                                      ("per_table_weight_dtype", None), ("fp_weight_dtype", torch.int8),
                                      ("quantization_dtype", torch.int8), ("output_dtype", torch.float32)]),
    (_I, "quantize_dense", [("predict_module", REQUIRED), ("dtype", REQUIRED),
                            ("additional_embedding_module_type", [])]),
    (_I, "PredictModule", [("module", REQUIRED), ("device", None)]),
    (_I, "BatchingMetadata", [("type", REQUIRED), ("device", REQUIRED), ("pinned", REQUIRED)]),
    (_I, "set_pruning_data", [("model", REQUIRED), ("tables_to_rows_post_pruning", REQUIRED), ("module_types", None)]),
    (_I, "shard_quant_model", [("model", REQUIRED), ("world_size", 1), ("compute_device", "cuda"),
                               ("sharding_device", "meta"), ("sharders", None), ("device_memory_size", None),
                               ("constraints", None), ("ddr_cap", None), ("sharding_plan", None)]),
    *[(f"recsys_lib.distributed.{m}", c, [("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED),
                                           ("env", REQUIRED), ("fused_params", None), ("device", None)])
      for m, c in [("quant_embeddingbag", "ShardedQuantEmbeddingBagCollection"),
                   ("quant_embedding", "ShardedQuantEmbeddingCollection")]],
    ("recsys_lib.distributed.quant_embeddingbag", "ShardedQuantFeatureProcessedEmbeddingBagCollection",
     [("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED), ("env", REQUIRED),
      ("fused_params", None), ("device", None), ("feature_processor", None)]),
    *[(f"recsys_lib.distributed.{m}", f, [("sharding_type", REQUIRED), ("sharding_infos", REQUIRED),
                                          ("env", REQUIRED), ("device", None)])
      for m, f in [("quant_embeddingbag", "create_infer_embedding_bag_sharding"),
                   ("quant_embedding", "create_infer_embedding_sharding")]],
    *[("recsys_lib.distributed.quant_embedding_kernel", c, [("config", REQUIRED), ("pg", None), ("device", None),
                                                           ("fused_params", None), ("shard_index", None)])
      for c in ("QuantBatchedEmbeddingBag", "QuantBatchedEmbedding")],
    ("recsys_lib.distributed.sharding.tw_sharding", "InferTwEmbeddingSharding",
     [("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None), ("qcomm_codecs_registry", None),
      ("storage_device_type_from_sharding_infos", None)]),
    ("recsys_lib.distributed.sharding.rw_sharding", "InferRwPooledEmbeddingSharding",
     [("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None), ("need_pos", False),
      ("qcomm_codecs_registry", None), ("device_type_from_sharding_infos", None)]),
    ("recsys_lib.distributed.sharding.cw_sharding", "InferCwPooledEmbeddingSharding",
     [("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None), ("permute_embeddings", False),
      ("qcomm_codecs_registry", None)]),
    ("recsys_lib.inference.state_dict_transform", "state_dict_to_device",
     [("state_dict", REQUIRED), ("pg", REQUIRED), ("device", REQUIRED)]),
    ("recsys_lib.inference.model_packager", "PredictFactoryPackager.save_predict_factory",
     [("predict_factory", REQUIRED), ("configs", REQUIRED), ("output", REQUIRED), ("extra_files", REQUIRED)]),
]
