"""Dynamic resharding (TorchRec's ``torchrec.distributed.sharding.dynamic_sharding``): plan deltas and the
point-to-point moves of table shards and optimizer state between plans. Defined in ``distributed/_reshard/``."""

from recsys_lib.distributed._reshard.module import reshard_sharded_module  # noqa: F401
from recsys_lib.distributed._reshard.moves import (  # noqa: F401
    CommP2PMetadata,
    CommStrategy,
    move_sharded_tensors_to_cpu,
    prepare_comm_ops,
    transfer_data,
    update_state_dictionaries,
)
from recsys_lib.distributed._reshard.plan_delta import (  # noqa: F401
    output_sharding_plan_delta_single,
    output_sharding_plans_delta,
)
from recsys_lib.distributed._reshard.update_plan import update_module_sharding_plan  # noqa: F401
