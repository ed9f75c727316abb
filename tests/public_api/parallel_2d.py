"""Public names and pinned signatures of 2-D parallelism (DMPCollection), dynamic resharding and embedding-tower
sharding (issue 16)."""

from recsys_lib.distributed._core.enums import ShardingStrategy
from tests.public_api import REQUIRED

_D = "recsys_lib.distributed"

NAMES = [
    (f"{_D}.model_parallel", "DMPCollection"),
    (f"{_D}.types", "ShardingEnv2D"),
    (f"{_D}.types", "DMPCollectionConfig"),
    (f"{_D}.types", "DMPCollectionContext"),
    (f"{_D}.comm", "intra_and_cross_node_pg_2D"),
] + [
    (f"{_D}.sharding.dynamic_sharding", n) for n in [
        "CommP2PMetadata", "CommStrategy", "move_sharded_tensors_to_cpu", "output_sharding_plan_delta_single",
        "output_sharding_plans_delta", "prepare_comm_ops", "transfer_data", "update_module_sharding_plan",
        "update_state_dictionaries",
    ]
] + [
    (f"{_D}.embedding_tower_sharding", n) for n in [
        "EmbeddingTowerSharder", "EmbeddingTowerCollectionSharder", "ShardedEmbeddingTower",
        "ShardedEmbeddingTowerCollection", "EmbeddingTowerCollectionContext", "TowerLazyAwaitable",
    ]
]

SIGNATURES = [
    (f"{_D}.model_parallel", "DMPCollection", [
        ("module", REQUIRED), ("device", REQUIRED), ("plan", REQUIRED), ("world_size", REQUIRED),
        ("sharding_group_size", REQUIRED), ("global_pg", REQUIRED), ("sharding_strategy", ShardingStrategy.DEFAULT),
        ("node_group_size", None), ("sharders", None), ("init_data_parallel", True), ("init_parameters", True),
        ("data_parallel_wrapper", None), ("use_inter_host_allreduce", False), ("custom_all_reduce", None),
        ("submodule_configs", None), ("rs_awaitable_hook_module", None), ("use_sharded_relay", False),
    ]),
    (f"{_D}.model_parallel", "DMPCollection.sync", [("self", REQUIRED), ("include_optimizer_state", True)]),
    (f"{_D}.types", "ShardingEnv2D", [
        ("sharding_pg", REQUIRED), ("replica_pg", REQUIRED), ("global_pg", REQUIRED), ("device_mesh", REQUIRED),
        ("node_group_size", None), ("use_inter_host_allreduce", False), ("sharding_strategy", ShardingStrategy.DEFAULT),
    ]),
    (f"{_D}.types", "DMPCollectionConfig", [
        ("module", REQUIRED), ("plan", REQUIRED), ("sharding_group_size", REQUIRED), ("node_group_size", None),
        ("use_inter_host_allreduce", False), ("sharding_strategy", ShardingStrategy.DEFAULT),
    ]),
    (f"{_D}.comm", "intra_and_cross_node_pg_2D", [("env", REQUIRED), ("device", None)]),
    (f"{_D}.model_parallel", "DistributedModelParallel.reshard", [
        ("self", REQUIRED), ("changed_shard_to_params", REQUIRED), ("sharded_module_fqn", None)]),
    (f"{_D}.embeddingbag", "EmbeddingBagCollectionSharder.reshard", [
        ("self", REQUIRED), ("sharded_module", REQUIRED), ("changed_shard_to_params", REQUIRED), ("env", REQUIRED),
        ("device", None)]),
    (f"{_D}.embeddingbag", "ShardedEmbeddingBagCollection.update_shards", [
        ("self", REQUIRED), ("changed_sharding_params", REQUIRED), ("env", REQUIRED), ("device", REQUIRED)]),
    (f"{_D}.sharding.dynamic_sharding", "output_sharding_plan_delta_single", [
        ("old_plan", REQUIRED), ("new_plan", REQUIRED), ("return_data_volume", False)]),
    (f"{_D}.sharding.dynamic_sharding", "output_sharding_plans_delta", [
        ("old_plan", REQUIRED), ("new_plan", REQUIRED), ("return_data_volume", False)]),
    (f"{_D}.sharding.dynamic_sharding", "prepare_comm_ops", [
        ("module_sharding_plan", REQUIRED), ("current_state_dict", REQUIRED), ("new_state_dict", REQUIRED),
        ("changed_sharding_params", REQUIRED), ("shard_name", REQUIRED), ("env", REQUIRED)]),
    (f"{_D}.sharding.dynamic_sharding", "transfer_data", [("comms_op", REQUIRED)]),
    (f"{_D}.sharding.dynamic_sharding", "update_state_dictionaries", [
        ("reqs", REQUIRED), ("old_optimizer_state", REQUIRED), ("new_optimizer_state", REQUIRED),
        ("old_state", REQUIRED), ("new_state", REQUIRED), ("changed_sharding_params", REQUIRED)]),
    (f"{_D}.sharding.dynamic_sharding", "update_module_sharding_plan", [
        ("module", REQUIRED), ("changed_sharding_params", REQUIRED), ("sharding_type_to_sharding_infos", REQUIRED)]),
    (f"{_D}.embedding_tower_sharding", "ShardedEmbeddingTower", [
        ("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED), ("embedding_sharder", REQUIRED),
        ("kjt_features", REQUIRED), ("wkjt_features", REQUIRED), ("env", REQUIRED), ("fused_params", None),
        ("device", None), ("qcomm_codecs_registry", None)]),
    (f"{_D}.embedding_tower_sharding", "ShardedEmbeddingTowerCollection", [
        ("module", REQUIRED), ("table_name_to_parameter_sharding", REQUIRED), ("tower_sharder", REQUIRED),
        ("env", REQUIRED), ("fused_params", None), ("device", None), ("qcomm_codecs_registry", None)]),
    (f"{_D}.embedding_tower_sharding", "EmbeddingTowerCollectionSharder", [
        ("fused_params", None), ("qcomm_codecs_registry", None)]),
    (f"{_D}.sharding.dynamic_sharding", "CommP2PMetadata", [
        ("shard_name", REQUIRED), ("offsets", REQUIRED), ("comm_op", REQUIRED), ("requires_copy", REQUIRED),
        ("is_optimizer_state", REQUIRED)]),
]
