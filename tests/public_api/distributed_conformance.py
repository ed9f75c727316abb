"""Issue 12 (conformance with TorchRec 1.8.0): distributed-core and ``distributed/sharding`` names added in the
conformance wave, at TorchRec's paths, with a few pinned signatures."""

from tests.public_api import REQUIRED

_D = "recsys_lib.distributed"
_S = f"{_D}.sharding"
_LOG_FUNCS = [
    "log_planning_result", "log_offloading_summary", "log_storage_reservation", "log_planner_config", "log_stats_match",
    "log_cacheability_resolved", "log_clf_computed", "log_itep_config", "log_itep_init_state", "log_itep_eviction",
    "log_itep_pruning_trigger", "log_itep_checkpoint_save", "log_itep_checkpoint_load", "log_itep_table_config",
    "log_itep_rowwise_shard", "log_itep_ien_pruning_stats", "log_itep_ien_pruning_decision", "log_itep_itp_info",
    "log_two_dim_sharding_config", "log_ssd_offloading_config", "log_ems_config", "log_inplace_copy_batch",
    "log_clear_input_dist_tensors", "log_free_features_storage_early", "log_ems_event", "log_emo_event",
    "log_mpzch_summary", "log_kvzch_summary", "log_zorm_config", "log_kernel_changed", "log_pipeline_module_info",
    "log_table_assignment", "log_table_constraints", "log_tbe_composition", "log_search_space_summary",
    "log_search_space_augmented", "log_proposer_result", "log_albt_enablement", "log_albt_schedule_conversion",
    "log_albt_warning", "log_albt_error", "log_albt_stage_transition", "log_albt_validation_success",
    "log_albt_schedule_stage",
]

NAMES = (
    [(f"{_D}.types", n) for n in [
        "ComputeDevice", "ShardingStrategy", "ObjectPoolShardingType", "StorageUsageType", "compute_storage_usage",
        "ObjectPoolShardingPlan", "ShardingBucketMetadata", "DeviceToHostTensorAwaitable", "GenericMeta",
    ]]
    + [(f"{_D}.logging_utils", n) for n in [
        "EventType", "StackLayer", "OptimizationTechnique", "EventScope", "EventLoggingHandlerBase",
    ]]
    + [(f"{_D}.logging_handlers", n) for n in [
        "TorchrecComponent", "EventLoggingHandler", "TrainingOptimizationLogger", "detect_technique", *_LOG_FUNCS,
    ]]
    + [(f"{_D}.embedding_sharding", n) for n in [
        "detect_technique", "log_tbe_composition", "BaseSparseFeaturesWriteDist", "KJTSplitsAllToAllMeta",
    ]]
    + [(f"{_D}.comm", n) for n in ["get_topology_domain_multiple", "get_topology_group_world_size"]]
    + [(f"{_D}.comm_ops", n) for n in [
        "pg_name", "all2all_pooled_sync", "variable_batch_all2all_pooled_sync", "all2all_sequence_sync",
        "reduce_scatter_sync", "reduce_scatter_base_sync", "all_gather_base_sync", "reduce_scatter_v_sync",
    ]]
    + [(f"{_D}.dist_data", n) for n in [
        "SplitsAllToAllAwaitable", "TensorAllToAll", "TensorValuesAllToAll", "TensorAllToAllSplitsAwaitable",
        "TensorAllToAllValuesAwaitable", "JaggedTensorAllToAll",
    ]]
    + [(f"{_D}.collective_utils", n) for n in [
        "create_on_rank_and_share_result", "init_collective_validation", "validate_collectives_enabled",
    ]]
    + [(f"{_D}.fused_params", n) for n in ["get_embedding_table_index_type", "get_embedding_table_offset_type"]]
    + [(f"{_D}.utils", n) for n in [
        "emb_opt_type_to_optimizer_class", "ForkedPdb", "modify_input_for_feature_processor", "EmbeddingQuantizationUtils"]]
    + [(f"{_D}.embedding", "pad_vbe_kjt_lengths")]
    + [(f"{_D}.sharded_relay_utils", n) for n in [
        "ShardedRelayState", "setup_sharded_relay", "cleanup_sharded_relay", "allreduce_tensors_with_sharded_relay"]]
    + [(f"{_D}.embedding_sharding", n) for n in ["bucketize_embeddings_before_all2all_write", "bucketize_kjt_inference"]]
    + [(f"{_D}.feature_score_utils", n) for n in [
        "create_sharding_type_to_feature_score_mapping", "may_collect_feature_scores"]]
    + [(f"{_D}.logger", "LazyStr"), (f"{_D}.memory_stashing", "chunked_copy_"), (f"{_D}.memory_stashing", "MemoryStashingManager"),
       (f"{_D}.shards_wrapper", "LocalShardsWrapper")]
    + [(f"{_D}.embedding_dim_bucketer", n) for n in ["EmbDimBucketer", "EmbDimBucketerPolicy"]]
    + [(f"{_D}.embedding_types", n) for n in ["DTensorMetadata", "BaseEmbeddingUpdate"]]
    + [(f"{_D}.embeddingbag", n) for n in [
        "get_device_from_parameter_sharding", "replace_placement_with_meta_device",
        "create_sharding_infos_by_sharding_device_group", "EmbeddingAwaitable",
    ]]
    + [(f"{_D}.embedding", n) for n in [
        "get_device_from_parameter_sharding", "create_sharding_infos_by_sharding_device_group",
    ]]
    + [(f"{_D}.fp_embeddingbag", "param_dp_sync")]
    + [(f"{_D}.test_utils.multi_process", n) for n in [
        "MultiProcessContext", "MultiProcessTestBase", "run_multi_process_func", "init_distributed_single_host",
        "seed_and_log",
    ]]
    + [(f"{_S}.tw_sharding", "BaseTwEmbeddingSharding"), (f"{_S}.cw_sharding", "BaseCwEmbeddingSharding"),
       (f"{_S}.rw_sharding", "BaseRwEmbeddingSharding"), (f"{_S}.dp_sharding", "BaseDpEmbeddingSharding"),
       (f"{_S}.twrw_sharding", "BaseTwRwEmbeddingSharding"), (f"{_S}.grid_sharding", "BaseGridEmbeddingSharding"),
       (f"{_S}.grid_sharding", "GridPooledEmbeddingDist"), (f"{_S}.rw_sharding", "get_embedding_shard_metadata"),
       (f"{_S}.rw_sharding", "convert_tensor"), (f"{_S}.sequence_sharding", "SequenceShardingContext")]
)

SIGNATURES = [
    (f"{_S}.tw_sharding", "BaseTwEmbeddingSharding", [
        ("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None), ("qcomm_codecs_registry", None),
        ("storage_device_type_from_sharding_infos", None),
    ]),
    (f"{_S}.rw_sharding", "BaseRwEmbeddingSharding", [
        ("sharding_infos", REQUIRED), ("env", REQUIRED), ("device", None), ("need_pos", False),
        ("qcomm_codecs_registry", None), ("device_type_from_sharding_infos", None),
    ]),
    (f"{_S}.grid_sharding", "GridPooledEmbeddingDist", [
        ("rank", REQUIRED), ("cross_pg", REQUIRED), ("intra_pg", REQUIRED), ("dim_sum_per_node", REQUIRED),
        ("emb_dim_per_node_per_feature", REQUIRED), ("device", None), ("qcomm_codecs_registry", None),
        ("callbacks", None),
    ]),
    (f"{_D}.types", "compute_storage_usage", [
        ("tensor", REQUIRED), ("compute_device_type", REQUIRED), ("compute_kernel", REQUIRED),
        ("storage_usage_type", REQUIRED),
    ]),
    (f"{_D}.dist_data", "JaggedTensorAllToAll", [
        ("jt", REQUIRED), ("num_items_to_send", REQUIRED), ("num_items_to_receive", REQUIRED), ("pg", REQUIRED),
    ]),
    (f"{_D}.test_utils.multi_process", "MultiProcessContext", [
        ("rank", REQUIRED), ("world_size", REQUIRED), ("backend", "gloo"), ("local_size", None),
        ("use_deterministic_algorithms", True), ("disable_cuda_tf_32", True),
    ]),
    (f"{_D}.sharding_plan", "row_wise", [("sizes_placement", None), ("compute_kernel", None), ("num_buckets", None)]),
    (f"{_D}.global_settings", "set_propogate_device", [("val", REQUIRED)]),
]
