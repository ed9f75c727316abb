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
