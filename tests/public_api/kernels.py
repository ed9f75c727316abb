"""Public names and signatures of the embedding kernels, lookups and their types (issue 4, item 4)."""

from tests.public_api import REQUIRED

_ET = "recsys_lib.distributed.embedding_types"
_EK = "recsys_lib.distributed.embedding_kernel"
_BK = "recsys_lib.distributed.batched_embedding_kernel"
_EL = "recsys_lib.distributed.embedding_lookup"
_FP = "recsys_lib.distributed.fused_params"
_SL = "recsys_lib.distributed.composable.table_batched_embedding_slice"

NAMES = [
    *[(_ET, n) for n in (
        "EmbeddingComputeKernel", "compute_kernel_to_embedding_location", "OptimType", "ShardedConfig",
        "ShardedMetaConfig", "EmbeddingAttributes", "ShardedEmbeddingTable", "GroupedEmbeddingConfig", "KJTList",
        "ListOfKJTList", "InputDistOutputs", "BaseEmbeddingLookup", "BaseGroupedFeatureProcessor",
        "BaseEmbeddingSharder", "BaseQuantEmbeddingSharder", "ShardedEmbeddingModule", "FeatureShardingMixIn",
        "ModuleShardingMixIn")],
    (_EK, "BaseEmbedding"),
    (_EK, "get_state_dict"),
    (_EK, "create_virtual_sharded_tensors"),
    (_EK, "create_virtual_table_global_metadata"),
    (_EK, "create_virtual_table_local_metadata"),
    *[(_BK, n) for n in (
        "BaseBatchedEmbeddingBag", "BatchedFusedEmbeddingBag", "BatchedDenseEmbeddingBag", "BaseBatchedEmbedding",
        "BatchedFusedEmbedding", "BatchedDenseEmbedding", "EmbeddingFusedOptimizer", "KeyValueEmbedding",
        "KeyValueEmbeddingBag", "KeyValueEmbeddingFusedOptimizer", "ReduceScatterResizeAwaitable", "ShardParams",
        "ShardedBatchedFusedEmbedding", "ShardedBatchedFusedEmbeddingBag", "TritonBatchedFusedEmbeddingBag",
        "TritonEmbeddingFusedOptimizer", "ZeroCollisionEmbeddingCache", "ZeroCollisionEmbeddingEnrichmentCache",
        "ZeroCollisionKeyValueEmbedding", "ZeroCollisionKeyValueEmbeddingBag",
        "ZeroCollisionKeyValueEmbeddingFusedOptimizer")],
    *[(_EL, n) for n in (
        "GroupedPooledEmbeddingsLookup", "GroupedEmbeddingsLookup", "CommOpGradientScaling",
        "embeddings_cat_empty_rank_handle", "embeddings_cat_empty_rank_handle_inference", "dummy_tensor",
        "fx_wrap_tensor_view2d", "GroupedEmbeddingsUpdate", "InferGroupedEmbeddingsLookup", "InferGroupedLookupMixin",
        "InferGroupedPooledEmbeddingsLookup", "MetaInferGroupedEmbeddingsLookup",
        "MetaInferGroupedPooledEmbeddingsLookup")],
    *[(_FP, n) for n in (
        "FUSED_PARAM_REGISTER_TBE_BOOL", "FUSED_PARAM_QUANT_STATE_DICT_SPLIT_SCALE_BIAS",
        "FUSED_PARAM_TBE_ROW_ALIGNMENT", "FUSED_PARAM_BOUNDS_CHECK_MODE", "FUSED_PARAM_LENGTHS_TO_OFFSETS_LOOKUP",
        "FUSED_PARAM_IS_SSD_TABLE", "FUSED_PARAM_SSD_TABLE_LIST", "is_fused_param_register_tbe",
        "is_fused_param_quant_state_dict_split_scale_bias", "get_fused_param_tbe_row_alignment",
        "fused_param_bounds_check_mode", "fused_param_lengths_to_offsets_lookup", "tbe_fused_params",
        "get_tbes_to_register_from_iterable", "TBEToRegisterMixIn")],
    (_SL, "TableBatchedEmbeddingSlice"),
    ("recsys_lib.distributed.embedding_sharding", "group_tables"),
]

_KERNEL_INIT = [("config", REQUIRED), ("pg", None), ("device", None), ("sharding_type", None)]

SIGNATURES = [
    (_ET, "compute_kernel_to_embedding_location", [("compute_kernel", REQUIRED)]),
    (_ET, "ShardedConfig", [("local_rows", 0), ("local_cols", 0)]),
    (_ET, "GroupedEmbeddingConfig", [
        ("data_type", REQUIRED), ("pooling", REQUIRED), ("is_weighted", REQUIRED), ("has_feature_processor", REQUIRED),
        ("compute_kernel", REQUIRED), ("embedding_tables", REQUIRED), ("fused_params", None)]),
    (_ET, "KJTList", [("features", REQUIRED)]),
    (_ET, "InputDistOutputs", [("features", REQUIRED), ("unbucketize_permute_tensor", None),
                               ("bucket_mapping_tensor", None), ("bucketized_length", None)]),
    (_ET, "BaseEmbeddingSharder", [("fused_params", None), ("qcomm_codecs_registry", None)]),
    (_ET, "BaseEmbeddingSharder.sharding_types", [("self", REQUIRED), ("compute_device_type", REQUIRED)]),
    (_ET, "BaseEmbeddingSharder.compute_kernels",
     [("self", REQUIRED), ("sharding_type", REQUIRED), ("compute_device_type", REQUIRED)]),
    (_ET, "BaseEmbeddingSharder.storage_usage",
     [("self", REQUIRED), ("tensor", REQUIRED), ("compute_device_type", REQUIRED), ("compute_kernel", REQUIRED)]),
    (_ET, "BaseQuantEmbeddingSharder", [("fused_params", None), ("shardable_params", None)]),
    (_ET, "ShardedEmbeddingModule", [("qcomm_codecs_registry", None)]),
    (_EK, "get_state_dict",
     [("embedding_tables", REQUIRED), ("params", REQUIRED), ("pg", None), ("destination", None), ("prefix", "")]),
    (_BK, "BatchedFusedEmbeddingBag", _KERNEL_INIT),
    (_BK, "BatchedDenseEmbeddingBag", _KERNEL_INIT),
    (_BK, "BatchedFusedEmbedding", _KERNEL_INIT[:3]),
    (_BK, "BatchedDenseEmbedding", _KERNEL_INIT[:3]),
    (_BK, "ShardedBatchedFusedEmbeddingBag", _KERNEL_INIT + [("env", None)]),
    (_BK, "ShardedBatchedFusedEmbedding", _KERNEL_INIT[:3] + [("env", None)]),
    (_BK, "KeyValueEmbeddingBag", _KERNEL_INIT),
    (_BK, "KeyValueEmbedding", _KERNEL_INIT[:3]),
    (_BK, "KeyValueEmbeddingFusedOptimizer", [("config", REQUIRED), ("emb_module", REQUIRED), ("pg", None)]),
    (_BK, "ReduceScatterResizeAwaitable", [("async_work", REQUIRED), ("async_event", REQUIRED),
                                           ("shard_buf", REQUIRED), ("resize_callback", REQUIRED)]),
    (_BK, "BaseBatchedEmbeddingBag.forward", [("self", REQUIRED), ("features", REQUIRED), ("vbe_output", None),
                                              ("vbe_output_offsets", None)]),
    (_BK, "EmbeddingFusedOptimizer", [
        ("config", REQUIRED), ("emb_module", REQUIRED), ("pg", None), ("create_for_table", None),
        ("param_weight_for_table", None), ("embedding_weights_by_table", None), ("all_optimizer_states", None)]),
    (_BK, "EmbeddingFusedOptimizer.set_optimizer_step", [("self", REQUIRED), ("step", REQUIRED)]),
    (_BK, "EmbeddingFusedOptimizer.update_hyper_parameters", [("self", REQUIRED), ("params_dict", REQUIRED)]),
    (_EL, "GroupedPooledEmbeddingsLookup", [
        ("grouped_configs", REQUIRED), ("device", None), ("pg", None), ("feature_processor", None),
        ("scale_weight_gradients", True), ("sharding_type", None), ("env", None)]),
    (_EL, "GroupedPooledEmbeddingsLookup.prefetch", [("self", REQUIRED), ("sparse_features", REQUIRED),
                                                     ("forward_stream", None)]),
    (_EL, "GroupedEmbeddingsLookup", [("grouped_configs", REQUIRED), ("pg", None), ("device", None), ("env", None)]),
    (_EL, "dummy_tensor", [("sparse_features", REQUIRED), ("dtype", REQUIRED)]),
    (_EL, "GroupedEmbeddingsUpdate", [("grouped_embeddings_lookup", REQUIRED)]),
    (_EL, "InferGroupedPooledEmbeddingsLookup", [
        ("grouped_configs_per_rank", REQUIRED), ("world_size", REQUIRED), ("fused_params", None), ("device", None),
        ("device_type_from_sharding_infos", None)]),
    (_EL, "MetaInferGroupedPooledEmbeddingsLookup", [
        ("grouped_configs", REQUIRED), ("device", None), ("feature_processor", None), ("fused_params", None),
        ("shard_index", None)]),
    (_EL, "embeddings_cat_empty_rank_handle", [("embeddings", REQUIRED), ("dummy_embs_tensor", REQUIRED), ("dim", 0)]),
    (_SL, "TableBatchedEmbeddingSlice", [
        ("data", REQUIRED), ("start_offset", REQUIRED), ("end_offset", REQUIRED),
        ("num_embeddings", REQUIRED), ("embedding_dim", REQUIRED)]),
    (_FP, "tbe_fused_params", [("fused_params", REQUIRED)]),
]
