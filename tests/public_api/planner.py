"""Public names and ★ signatures of ``torchrec.distributed.planner`` (reference §2.8)."""

from recsys_lib.distributed.planner.partitioners import SortBy
from recsys_lib.distributed.types import PipelineType
from tests.public_api import REQUIRED

_P = "recsys_lib.distributed.planner"

NAMES = [
    (_P, "EmbeddingShardingPlanner"),
    (_P, "EmbeddingPlannerBase"),
    (_P, "ParameterConstraints"),
    (_P, "Topology"),
    (_P, "bytes_to_gb"),
    (_P, "sharder_name"),
] + [(f"{_P}.types", n) for n in [
    "Topology", "ParameterConstraints", "Shard", "ShardingOption", "Storage", "Perf", "DeviceHardware",
    "PartitionByType", "CollectiveType", "BasicCommsBandwidths", "GeneralizedCommsBandwidth", "CustomTopologyData",
    "CriticalPathEstimate", "PlannerError", "PlannerErrorType", "ShardEstimator", "Enumerator", "StorageReservation",
    "Proposer", "Partitioner", "PerfModel", "Stats",
]] + [
    (f"{_P}.planners", "EmbeddingShardingPlanner"),
    (f"{_P}.planners", "EmbeddingPlannerBase"),
    (f"{_P}.planners", "to_sharding_plan"),
    (f"{_P}.enumerators", "EmbeddingEnumerator"),
    (f"{_P}.enumerators", "get_partition_by_type"),
    (f"{_P}.shard_estimators", "EmbeddingPerfEstimator"),
    (f"{_P}.shard_estimators", "EmbeddingStorageEstimator"),
    (f"{_P}.shard_estimators", "calculate_shard_storages"),
    (f"{_P}.shard_estimators", "calculate_pipeline_io_cost"),
    (f"{_P}.partitioners", "GreedyPerfPartitioner"),
    (f"{_P}.partitioners", "MemoryBalancedPartitioner"),
    (f"{_P}.partitioners", "SortBy"),
    (f"{_P}.proposers", "GreedyProposer"),
    (f"{_P}.proposers", "GridSearchProposer"),
    (f"{_P}.proposers", "UniformProposer"),
    (f"{_P}.proposers", "DynamicProgrammingProposer"),
    (f"{_P}.proposers", "proposers_to_proposals_list"),
    (f"{_P}.storage_reservations", "HeuristicalStorageReservation"),
    (f"{_P}.storage_reservations", "FixedPercentageStorageReservation"),
    (f"{_P}.storage_reservations", "InferenceStorageReservation"),
    (f"{_P}.perf_models", "NoopPerfModel"),
    (f"{_P}.perf_models", "NoopStorageModel"),
    (f"{_P}.stats", "EmbeddingStats"),
    (f"{_P}.stats", "NoopEmbeddingStats"),
    (f"{_P}.stats", "round_to_one_sigfig"),
    (f"{_P}.constants", "kernel_bw_lookup"),
] + [(f"{_P}.constants", n) for n in [
    "BATCH_SIZE", "HBM_CAP", "DDR_CAP", "HBM_MEM_BW", "DDR_MEM_BW", "HBM_TO_DDR_MEM_BW", "INTRA_NODE_BANDWIDTH",
    "CROSS_NODE_BANDWIDTH", "POOLING_FACTOR", "NUM_POOLINGS", "BIGINT_DTYPE", "MIN_CW_DIM", "UVM_CACHING_RATIO",
    "KV_CACHING_RATIO", "BWD_COMPUTE_MULTIPLIER", "WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER",
    "WEIGHTED_KERNEL_MULTIPLIER", "DP_ELEMENTWISE_KERNELS_PERF_FACTOR", "HALF_BLOCK_PENALTY", "QUARTER_BLOCK_PENALTY",
    "BATCHED_COPY_PERF_FACTOR", "FULL_BLOCK_EMB_DIM",
]] + [(f"{_P}.utils", n) for n in [
    "bytes_to_gb", "bytes_to_mb", "gb_to_bytes", "mb_to_bytes", "prod", "placement", "sharder_name",
    "storage_repr_in_gb", "reset_shard_rank", "BinarySearchPredicate", "LuusJaakolaSearch",
]] + [
    (f"{_P}.calibration", "CpuCalibration"),
    (f"{_P}.calibration", "calibrate"),
    (f"{_P}.calibration", "default_cpu_calibration"),
    (f"{_P}.report", "plan_report"),
    (f"{_P}.report", "PlanReport"),
]

# every def/class TorchRec 1.8.0 defines in the planner package, by module
_TORCHREC_1_8_0 = {
    ".constants": [
        "kernel_bw_lookup"
    ],
    ".enumerators": [
        "EmbeddingEnumerator", "get_partition_by_type"
    ],
    ".partitioners": [
        "ShardingOptionGroup", "SortBy", "OrderedDeviceHardware", "GreedyPerfPartitioner",
        "MemoryBalancedPartitioner"
    ],
    ".perf_models": [
        "NoopPerfModel", "NoopStorageModel"
    ],
    ".planners": [
        "detect_technique", "log_offloading_summary", "log_planner_config", "log_planning_result",
        "log_proposer_result", "log_search_space_summary", "log_storage_reservation", "log_table_assignment",
        "log_ssd_offloading_config", "log_mpzch_summary", "log_kvzch_summary", "log_table_constraints",
        "to_sharding_plan", "validate_modules_inclusion_in_sharding_plan", "validate_rank_assignment",
        "validate_compute_kernels", "extract_plan", "EmbeddingPlannerBase", "EmbeddingShardingPlanner"
    ],
    ".proposers": [
        "GreedyProposer", "UniformProposer", "GridSearchProposer", "DynamicProgrammingProposer",
        "EmbeddingOffloadScaleupProposer", "proposers_to_proposals_list"
    ],
    ".shard_estimators": [
        "EmbeddingPerfEstimator", "EmbeddingStorageEstimator", "calculate_pipeline_io_cost",
        "calculate_shard_storages", "get_num_poolings", "EmbeddingOffloadStats"
    ],
    ".stats": [
        "EmbeddingStats", "round_to_one_sigfig", "NoopEmbeddingStats"
    ],
    ".storage_reservations": [
        "StorageReservationType", "FixedPercentageStorageReservation", "FixedAbsoluteStorageReservation",
        "HeuristicalStorageReservation", "InferenceStorageReservation"
    ],
    ".types": [
        "Perf", "Storage", "DeviceHardware", "CustomTopologyData", "CollectiveType",
        "GeneralizedCommsBandwidth", "BasicCommsBandwidths", "TopologyConfigBase", "HardwareConfig",
        "TrainerConfig", "KernelConfig", "TopologyFactory", "Topology", "Shard", "ShardingOption",
        "PartitionByType", "SharderData", "ParameterConstraints", "PlannerErrorType", "PlannerError",
        "StorageReservation", "PerfModel", "ShardEstimator", "Enumerator", "Proposer", "Partitioner",
        "PlanDebugStats", "Stats", "PlanLoader", "CriticalPathEstimate", "hash_sha256_to_int",
        "hash_sha256_str", "hash_planner_context_inputs", "hash_planner_context_inputs_str", "round_to_nearest"
    ],
    ".utils": [
        "build_sharder_data", "build_sharder_data_map", "sharder_name", "is_prefetch_pipelined",
        "extract_comm_data_type_size", "get_num_poolings", "bytes_to_gb", "bytes_to_mb", "gb_to_bytes",
        "mb_to_bytes", "prod", "placement", "storage_repr_in_gb", "reset_shard_rank", "BinarySearchPredicate",
        "LuusJaakolaSearch"
    ],
    ".estimator.annotations": [
        "get_custom_method", "get_forward_compute", "get_backward_compute", "get_prefetch_compute",
        "get_input_dist_comms", "get_fwd_comms", "get_bwd_comms", "get_output_write_size", "hbm_mem_bw",
        "ddr_mem_bw", "ssd_mem_bw", "hbm_to_ddr_mem_bw", "device_bw", "intra_host_bw", "inter_host_bw",
        "forward_compute", "backward_compute", "prefetch_compute", "input_dist_comms", "fwd_comms", "bwd_comms",
        "output_write_size", "use_min_dim_for_lookup", "use_block_usage_penalty",
        "use_bytes_for_input_read_size", "input_data_type_size", "supported_sharding_types", "fwd_coefficient",
        "bwd_coefficient", "prefetch_coefficient", "get_fwd_coefficient", "get_bwd_coefficient",
        "get_prefetch_coefficient"
    ],
    ".estimator.config": [
        "EmbeddingPerfEstimatorConfig"
    ],
    ".estimator.estimator": [
        "EmbeddingShardingPerfEvaluator", "TableWiseEvaluator", "RowWiseEvaluator", "TableRowWiseEvaluator",
        "DataParallelEvaluator", "ColumnWiseEvaluator", "TableColumnWiseEvaluator", "GridShardEvaluator",
        "EmbeddingPerfEstimator", "EmbeddingPerfEstimatorFactory", "InferenceShardingPerfEvaluator",
        "TableWiseInferenceEvaluator", "RowWiseInferenceEvaluator", "TableRowWiseInferenceEvaluator",
        "ColumnWiseInferenceEvaluator", "DataParallelInferenceEvaluator", "TableColumnWiseInferenceEvaluator",
        "GridShardInferenceEvaluator", "compute_block_usage_penalty", "get_embedding_perf_sharding_evaluator"
    ],
    ".estimator.types": [
        "PerfCoefficient", "EstimatorPerfCoefficients", "PrefetchCoefficients", "PerfCoefficientConfig",
        "HardwarePerfConfig", "ShardPerfContext"
    ],
}
NAMES += [(f"{_P}{mod}", n) for mod, ns in _TORCHREC_1_8_0.items() for n in ns]

_PLANNER_INIT = [
    ("topology", None), ("batch_size", None), ("enumerator", None), ("storage_reservation", None),
    ("proposer", None), ("partitioner", None), ("performance_model", None), ("stats", None),
    ("constraints", None), ("debug", True),
]

SIGNATURES = [
    (f"{_P}.planners", "EmbeddingShardingPlanner", _PLANNER_INIT),
    (f"{_P}.planners", "EmbeddingShardingPlanner.plan", [("self", REQUIRED), ("module", REQUIRED), ("sharders", REQUIRED)]),
    (f"{_P}.planners", "EmbeddingShardingPlanner.collective_plan",
     [("self", REQUIRED), ("module", REQUIRED), ("sharders", None), ("pg", None)]),
    (f"{_P}.types", "Topology", [
        ("world_size", REQUIRED), ("compute_device", REQUIRED), ("hbm_cap", None), ("ddr_cap", None),
        ("ssd_cap", None), ("local_world_size", None), ("pod_size", None), ("hbm_mem_bw", 963146416.128),
        ("ddr_mem_bw", 54760833.024), ("ssd_mem_bw", 104857.6), ("hbm_to_ddr_mem_bw", 34359738.368), ("intra_host_bw", 644245094.4), ("inter_host_bw", 13421772.8),
        ("bwd_compute_multiplier", 2), ("custom_topology_data", None), ("weighted_feature_bwd_compute_multiplier", 1),
        ("uneven_sharding_perf_multiplier", 1.0), ("generalized_comms_bandwidths", None),
        ("created_by_factory", False),
    ]),
    (f"{_P}.enumerators", "EmbeddingEnumerator", [
        ("topology", REQUIRED), ("batch_size", REQUIRED), ("constraints", None), ("estimator", None),
        ("use_exact_enumerate_order", False),
    ]),
    (f"{_P}.enumerators", "EmbeddingEnumerator.enumerate", [("self", REQUIRED), ("module", REQUIRED), ("sharders", REQUIRED)]),
    (f"{_P}.enumerators", "EmbeddingEnumerator.populate_estimates", [("self", REQUIRED), ("sharding_options", REQUIRED)]),
    (f"{_P}.shard_estimators", "EmbeddingPerfEstimator",
     [("topology", REQUIRED), ("constraints", None), ("is_inference", False)]),
    (f"{_P}.shard_estimators", "EmbeddingPerfEstimator.estimate",
     [("self", REQUIRED), ("sharding_options", REQUIRED), ("sharder_data_map", REQUIRED)]),
    (f"{_P}.shard_estimators", "EmbeddingStorageEstimator", [
        ("topology", REQUIRED), ("constraints", None), ("pipeline_type", PipelineType.NONE), ("run_embedding_at_peak_memory", False),
        ("is_inference", False),
    ]),
    (f"{_P}.shard_estimators", "EmbeddingStorageEstimator.estimate",
     [("self", REQUIRED), ("sharding_options", REQUIRED), ("sharder_data_map", REQUIRED)]),
    (f"{_P}.partitioners", "GreedyPerfPartitioner", [("sort_by", SortBy.STORAGE), ("balance_modules", False)]),
    (f"{_P}.partitioners", "GreedyPerfPartitioner.partition",
     [("self", REQUIRED), ("proposal", REQUIRED), ("storage_constraint", REQUIRED), ("hbm_per_device", None)]),
    (f"{_P}.proposers", "GreedyProposer", [("use_depth", True), ("threshold", None)]),
    (f"{_P}.proposers", "GreedyProposer.load", [("self", REQUIRED), ("search_space", REQUIRED), ("enumerator", None)]),
    (f"{_P}.proposers", "GreedyProposer.propose", [("self", REQUIRED)]),
    (f"{_P}.proposers", "GreedyProposer.feedback", [
        ("self", REQUIRED), ("partitionable", REQUIRED), ("plan", None), ("perf_rating", None),
        ("storage_constraint", None),
    ]),
    (f"{_P}.storage_reservations", "HeuristicalStorageReservation",
     [("percentage", REQUIRED), ("parameter_multiplier", 6.0), ("dense_tensor_estimate", None)]),
    (f"{_P}.storage_reservations", "HeuristicalStorageReservation.reserve", [
        ("self", REQUIRED), ("topology", REQUIRED), ("batch_size", REQUIRED), ("module", REQUIRED),
        ("sharders", REQUIRED), ("constraints", None),
    ]),
    (f"{_P}.report", "plan_report", [("plan", REQUIRED), ("topology", REQUIRED)]),
]
NAMES += [(f"{_P}.constants", n) for n in [
    "BATCHED_COPY_PERF_FACTOR", "BATCH_SIZE", "BIGINT_DTYPE", "BWD_COMPUTE_MULTIPLIER", "CROSS_NODE_BANDWIDTH",
    "DDR_CAP", "DDR_MEM_BW", "DEFAULT_PERF_ESTIMATOR", "DP_ELEMENTWISE_KERNELS_PERF_FACTOR", "FULL_BLOCK_EMB_DIM",
    "HALF_BLOCK_PENALTY", "HBM_CAP", "HBM_MEM_BW", "HBM_TO_DDR_MEM_BW", "HUNDRED_GB", "INTRA_NODE_BANDWIDTH",
    "KV_CACHING_RATIO", "MAX_SIZE", "MIN_CW_DIM", "NUM_POOLINGS", "POOLING_FACTOR", "QUARTER_BLOCK_PENALTY", "SSD_CAP",
    "SSD_MEM_BW", "UVM_CACHING_RATIO", "WEIGHTED_FEATURE_BWD_COMPUTE_MULTIPLIER", "WEIGHTED_KERNEL_MULTIPLIER",
]] + [(f"{_P}.types", "SharderDataMap"), (f"{_P}.enumerators", "GUARDED_COMPUTE_KERNELS"),
      (f"{_P}.enumerators", "GUARDED_SHARDING_TYPES_FOR_FP_MODULES"), (f"{_P}.stats", "IMBALANCE_STAT_MEASURE"),
      (f"{_P}.stats", "MIN_WIDTH"), (f"{_P}.proposers", "MAX_PROPOSALS"),
      (f"{_P}.estimator.estimator", "TRAINING_EVALUATORS"), (f"{_P}.estimator.estimator", "INFERENCE_EVALUATORS"),
      (f"{_P}.estimator.types", "DATA_TYPE_NUM_BITS")]
