"""Public names and pinned signatures of 2-D parallelism (DMPCollection) and dynamic resharding."""

from recsys_lib.distributed._core.enums import ShardingStrategy
from tests.public_api import REQUIRED

_D = "recsys_lib.distributed"

NAMES = [
    (f"{_D}.model_parallel", "DMPCollection"),
    (f"{_D}.types", "ShardingEnv2D"),
    (f"{_D}.types", "DMPCollectionConfig"),
    (f"{_D}.types", "DMPCollectionContext"),
    (f"{_D}.comm", "intra_and_cross_node_pg_2D"),
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
]
