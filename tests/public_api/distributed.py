"""Public names and pinned signatures of recsys_lib.distributed's foundation layer (types, comm, comm_ops,
dist_data, sharding_plan, strategy registry, small support modules)."""

from tests.public_api import REQUIRED

_D = "recsys_lib.distributed"

NAMES = [
    (_D, n) for n in [
        "get_local_rank", "get_local_size", "Awaitable", "ModuleSharder", "NoWait", "ParameterSharding",
        "ShardedModule", "ShardedTensor", "ShardingEnv", "ShardingPlanner", "get_unsharded_module_names",
        "sharded_model_copy",
    ]
] + [
    (f"{_D}.types", n) for n in [
        "ShardingType", "ParameterStorage", "PipelineType", "ComputeKernel", "CommOp", "EmbeddingEvent",
        "Awaitable", "NoWait", "LazyAwaitable", "LazyNoWait", "LazyGetItemMixin", "GetItemLazyAwaitable",
        "QuantizedCommCodec", "NoOpQuantizedCommCodec", "QuantizedCommCodecs", "CacheParams", "CacheStatistics",
        "KeyValueParams", "ParameterSharding", "ModuleShardingPlan", "EmbeddingModuleShardingPlan", "ShardingPlan",
        "ShardingEnv", "ModuleSharder", "ShardedModule", "ShardingPlanner", "NullShardedModuleContext",
        "NullShardingContext", "ParameterShardingGenerator", "ShardedTensor", "Shard", "ShardedTensorMetadata",
        "TensorProperties", "EnumerableShardingSpec", "ShardingSpec", "ShardMetadata", "BoundsCheckMode",
        "CacheAlgorithm", "MultiPassPrefetchConfig", "get_tensor_size_bytes", "rank_device", "scope",
    ]
] + [
    (f"{_D}.comm", n) for n in [
        "get_local_size", "get_local_rank", "get_group_rank", "get_num_groups", "get_node_group_size",
        "intra_and_cross_node_pg",
    ]
] + [
    (f"{_D}.comm_ops", n) for n in [
        "alltoall_pooled", "variable_batch_alltoall_pooled", "alltoall_sequence", "reduce_scatter_pooled",
        "reduce_scatter_base_pooled", "reduce_scatter_v_pooled", "reduce_scatter_v_per_feature_pooled",
        "all_gather_base_pooled", "All2AllPooledInfo", "VariableBatchAll2AllPooledInfo", "All2AllSequenceInfo",
        "All2AllVInfo", "All2AllDenseInfo", "ReduceScatterInfo", "ReduceScatterBaseInfo", "ReduceScatterVInfo",
        "AllGatherBaseInfo", "Request", "set_gradient_division", "get_gradient_division", "set_use_sync_collectives",
        "get_use_sync_collectives", "torchrec_use_sync_collectives", "Comm", "All2AllSingle", "DefaultAllocMixin",
        "DefaultAll2AllSingle", "AllToAllSingle", "All2All_Pooled_Req", "All2All_Pooled_Wait",
        "Variable_Batch_All2All_Pooled_Req", "Variable_Batch_All2All_Pooled_Wait", "All2All_Seq_Req",
        "All2All_Seq_Req_Wait", "All2Allv_Req", "All2Allv_Wait", "ReduceScatter_Req", "ReduceScatter_Wait",
        "ReduceScatterBase_Req", "ReduceScatterBase_Wait", "ReduceScatterV_Req", "ReduceScatterV_Wait",
        "AllGatherBase_Req", "AllGatherBase_Wait", "all_gather_into_tensor", "all_gather_into_tensor_fake",
        "all_gather_into_tensor_setup_context", "all_gather_into_tensor_backward", "reduce_scatter_tensor",
        "reduce_scatter_tensor_fake", "reduce_scatter_tensor_setup_context", "reduce_scatter_tensor_backward",
    ]
] + [
    (f"{_D}.dist_data", n) for n in [
        "KJTAllToAll", "KJTAllToAllSplitsAwaitable", "KJTAllToAllTensorsAwaitable", "KJTOneToAll",
        "KJEAllToAll", "PooledEmbeddingsAllToAll", "VariableBatchPooledEmbeddingsAllToAll", "PooledEmbeddingsReduceScatter",
        "VariableBatchPooledEmbeddingsReduceScatter", "PooledEmbeddingsAllGather", "PooledEmbeddingsAwaitable",
        "SequenceEmbeddingsAllToAll", "SequenceEmbeddingsAwaitable", "EmbeddingsAllToOne", "EmbeddingsAllToOneReduce",
        "SeqEmbeddingsAllToOne", "MergePooledEmbeddingsModule",
    ]
] + [
    (f"{_D}.fbgemm_qcomm_codec", n) for n in [
        "CommType", "QCommsConfig", "get_qcomm_codecs", "get_qcomm_codecs_registry", "comm_type_to_sparse_type",
    ]
] + [
    (f"{_D}.global_settings", "set_propogate_device"), (f"{_D}.global_settings", "get_propogate_device"),
    (f"{_D}.collective_utils", "is_leader"), (f"{_D}.collective_utils", "run_on_leader"),
    (f"{_D}.collective_utils", "invoke_on_rank_and_broadcast_result"),
] + [
    (f"{_D}.utils", n) for n in [
        "append_prefix", "filter_state_dict", "add_prefix_to_state_dict", "get_unsharded_module_names",
        "sharded_model_copy", "copy_to_device", "CopyableMixin", "optimizer_type_to_emb_opt_type",
        "merge_fused_params", "add_params_from_parameter_sharding", "convert_to_fbgemm_types", "init_parameters",
        "get_device_type", "none_throws", "assert_instance", "get_class_name", "maybe_annotate_embedding_event",
        "create_global_tensor_shape_stride_from_metadata", "get_bucket_metadata_from_shard_metadata",
        "weights_bytes_in_emb_kernel",
    ]
] + [
    (f"{_D}.sharding_plan", n) for n in [
        "data_parallel", "table_wise", "row_wise", "column_wise", "table_row_wise", "grid_shard", "apply_to_all",
        "construct_module_sharding_plan", "calculate_shard_sizes_and_offsets", "placement", "placement_helper",
        "get_sharding_constructor_from_type", "get_default_sharders", "get_module_to_default_sharders", "MIN_CW_DIM",
    ]
] + [
    (f"{_D}.sharding.strategy", "strategy_for"), (f"{_D}.sharding.strategy", "ShardingStrategy"),
    (f"{_D}.sharding.strategy", "registered_sharding_types"),
] + [(f"{_D}.sharding.{s}_sharding.layout", "shard_sizes_and_offsets")
     for s in ("dp", "tw", "cw", "twcw", "rw", "twrw", "grid")] + [
    (f"{_D}.test_utils", "run_multiprocess"), (f"{_D}.test_utils", "count_collectives"),
]

SIGNATURES = [
    (f"{_D}.types", "ShardingEnv", [("world_size", REQUIRED), ("rank", REQUIRED), ("pg", None), ("output_dtensor", False)]),
    (f"{_D}.types", "ShardingEnv.from_process_group", [("pg", REQUIRED)]),
    (f"{_D}.types", "ShardingEnv.from_local", [("world_size", REQUIRED), ("rank", REQUIRED)]),
    (f"{_D}.types", "ParameterSharding", [
        ("sharding_type", REQUIRED), ("compute_kernel", REQUIRED), ("ranks", None), ("sharding_spec", None),
        ("cache_params", None), ("enforce_hbm", None), ("stochastic_rounding", None), ("bounds_check_mode", None),
        ("output_dtype", None), ("key_value_params", None)]),
    # TorchRec declares it an abstract class method, so the bound signature starts at ``module``
    (f"{_D}.types", "ModuleSharder.shard", [
        ("module", REQUIRED), ("params", REQUIRED), ("env", REQUIRED), ("device", None),
        ("module_fqn", None)]),
    (f"{_D}.types", "ModuleSharder.storage_usage", [
        ("self", REQUIRED), ("tensor", REQUIRED), ("compute_device_type", REQUIRED), ("compute_kernel", REQUIRED)]),
    (f"{_D}.types", "ModuleSharder.sharding_types", [("self", REQUIRED), ("compute_device_type", REQUIRED)]),
    (f"{_D}.types", "ModuleSharder.compute_kernels", [
        ("self", REQUIRED), ("sharding_type", REQUIRED), ("compute_device_type", REQUIRED)]),
    (f"{_D}.types", "ShardedModule.input_dist", [("self", REQUIRED), ("ctx", REQUIRED)]),
    (f"{_D}.types", "ShardedModule.compute", [("self", REQUIRED), ("ctx", REQUIRED), ("dist_input", REQUIRED)]),
    (f"{_D}.types", "ShardedModule.output_dist", [("self", REQUIRED), ("ctx", REQUIRED), ("output", REQUIRED)]),
    (f"{_D}.types", "ShardedModule.compute_and_output_dist", [("self", REQUIRED), ("ctx", REQUIRED), ("input", REQUIRED)]),
    (f"{_D}.types", "ShardingPlan.get_plan_for_module", [("self", REQUIRED), ("module_path", REQUIRED)]),
    (f"{_D}.comm", "get_local_size", [("world_size", None)]),
    (f"{_D}.comm", "get_local_rank", [("world_size", None), ("rank", None)]),
    (f"{_D}.comm", "intra_and_cross_node_pg", [("device", None), ("backend", None)]),
    (f"{_D}.comm_ops", "alltoall_pooled", [
        ("a2a_pooled_embs_tensor", REQUIRED), ("batch_size_per_rank", REQUIRED), ("dim_sum_per_rank", REQUIRED),
        ("dim_sum_per_rank_tensor", None), ("cumsum_dim_sum_per_rank_tensor", None), ("group", None), ("codecs", None),
        ("all_to_all_single_comm", None)]),
    (f"{_D}.comm_ops", "variable_batch_alltoall_pooled", [
        ("a2a_pooled_embs_tensor", REQUIRED), ("batch_size_per_rank_per_feature", REQUIRED),
        ("batch_size_per_feature_pre_a2a", REQUIRED), ("emb_dim_per_rank_per_feature", REQUIRED), ("group", None),
        ("codecs", None), ("all_to_all_single_comm", None)]),
    (f"{_D}.comm_ops", "alltoall_sequence", [
        ("a2a_sequence_embs_tensor", REQUIRED), ("forward_recat_tensor", REQUIRED), ("backward_recat_tensor", REQUIRED),
        ("lengths_after_sparse_data_all2all", REQUIRED), ("input_splits", REQUIRED), ("output_splits", REQUIRED),
        ("variable_batch_size", False), ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "reduce_scatter_pooled", [("inputs", REQUIRED), ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "reduce_scatter_base_pooled", [("input", REQUIRED), ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "reduce_scatter_v_pooled", [
        ("input", REQUIRED), ("input_splits", REQUIRED), ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "reduce_scatter_v_per_feature_pooled", [
        ("input", REQUIRED), ("batch_size_per_rank_per_feature", REQUIRED), ("embedding_dims", REQUIRED),
        ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "all_gather_base_pooled", [("input", REQUIRED), ("group", None), ("codecs", None)]),
    (f"{_D}.comm_ops", "Request", [("pg", REQUIRED), ("device", REQUIRED)]),
    (f"{_D}.dist_data", "KJTAllToAll", [("pg", REQUIRED), ("splits", REQUIRED), ("stagger", 1)]),
    (f"{_D}.dist_data", "KJTOneToAll", [("splits", REQUIRED), ("world_size", REQUIRED), ("device", None)]),
    (f"{_D}.dist_data", "PooledEmbeddingsAllToAll", [
        ("pg", REQUIRED), ("dim_sum_per_rank", REQUIRED), ("device", None), ("callbacks", None), ("codecs", None)]),
    (f"{_D}.dist_data", "PooledEmbeddingsAllToAll.forward", [
        ("self", REQUIRED), ("local_embs", REQUIRED), ("batch_size_per_rank", None)]),
    (f"{_D}.dist_data", "VariableBatchPooledEmbeddingsAllToAll", [
        ("pg", REQUIRED), ("emb_dim_per_rank_per_feature", REQUIRED), ("device", None), ("callbacks", None),
        ("codecs", None)]),
    (f"{_D}.dist_data", "PooledEmbeddingsReduceScatter", [("pg", REQUIRED), ("codecs", None)]),
    (f"{_D}.dist_data", "PooledEmbeddingsReduceScatter.forward", [
        ("self", REQUIRED), ("local_embs", REQUIRED), ("input_splits", None)]),
    (f"{_D}.dist_data", "VariableBatchPooledEmbeddingsReduceScatter", [("pg", REQUIRED), ("codecs", None)]),
    (f"{_D}.dist_data", "PooledEmbeddingsAllGather", [("pg", REQUIRED), ("codecs", None)]),
    (f"{_D}.dist_data", "SequenceEmbeddingsAllToAll", [
        ("pg", REQUIRED), ("features_per_rank", REQUIRED), ("device", None), ("codecs", None)]),
    (f"{_D}.dist_data", "SequenceEmbeddingsAllToAll.forward", [
        ("self", REQUIRED), ("local_embs", REQUIRED), ("lengths", REQUIRED), ("input_splits", REQUIRED),
        ("output_splits", REQUIRED), ("unbucketize_permute_tensor", None), ("batch_size_per_rank", None),
        ("sparse_features_recat", None)]),
    (f"{_D}.dist_data", "SequenceEmbeddingsAwaitable", [
        ("tensor_awaitable", REQUIRED), ("unbucketize_permute_tensor", REQUIRED), ("embedding_dim", REQUIRED)]),
    (f"{_D}.dist_data", "EmbeddingsAllToOne", [("device", REQUIRED), ("world_size", REQUIRED), ("cat_dim", REQUIRED)]),
    (f"{_D}.dist_data", "EmbeddingsAllToOneReduce", [("device", REQUIRED), ("world_size", REQUIRED)]),
    (f"{_D}.dist_data", "SeqEmbeddingsAllToOne", [("device", REQUIRED), ("world_size", REQUIRED)]),
    (f"{_D}.sharding_plan", "table_wise", [("rank", REQUIRED), ("device", None), ("compute_kernel", None)]),
    (f"{_D}.sharding_plan", "row_wise", [("sizes_placement", None), ("compute_kernel", None)]),
    (f"{_D}.sharding_plan", "column_wise", [
        ("ranks", None), ("size_per_rank", None), ("compute_kernel", None), ("device_types", None)]),
    (f"{_D}.sharding_plan", "table_row_wise", [("host_index", REQUIRED)]),
    (f"{_D}.sharding_plan", "grid_shard", [("host_indexes", REQUIRED)]),
    (f"{_D}.sharding_plan", "apply_to_all", [
        ("module", REQUIRED), ("parameter_sharding_generator", REQUIRED), ("sharder", None)]),
    (f"{_D}.sharding_plan", "construct_module_sharding_plan", [
        ("module", REQUIRED), ("per_param_sharding", REQUIRED), ("sharder", None), ("local_size", None),
        ("world_size", None), ("device_type", None)]),
    (f"{_D}.sharding_plan", "calculate_shard_sizes_and_offsets", [
        ("tensor", REQUIRED), ("world_size", REQUIRED), ("local_world_size", REQUIRED), ("sharding_type", REQUIRED),
        ("col_wise_shard_dim", None), ("device_memory_sizes", None), ("num_buckets", None)]),
    (f"{_D}.sharding_plan", "placement", [("compute_device", REQUIRED), ("rank", REQUIRED), ("local_size", REQUIRED)]),
    (f"{_D}.sharding_plan", "placement_helper", [("device_type", REQUIRED), ("index", 0), ("rank", 0)]),
    (f"{_D}.fbgemm_qcomm_codec", "get_qcomm_codecs_registry", [
        ("qcomms_config", REQUIRED), ("comm_ops", None), ("device", None)]),
    (f"{_D}.collective_utils", "invoke_on_rank_and_broadcast_result", [
        ("pg", REQUIRED), ("rank", REQUIRED), ("func", REQUIRED)]),
    (f"{_D}.utils", "merge_fused_params", [("fused_params", None), ("param_fused_params", None)]),
]
