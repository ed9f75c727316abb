"""Plans of sharded object pools (public path ``recsys_lib.distributed.types``)."""

import enum
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from recsys_lib._public import public_at
from recsys_lib.distributed._core.plan import ModuleShardingPlan


@public_at("recsys_lib.distributed.types")
class ObjectPoolShardingType(enum.Enum):
    """How a ``TensorPool`` / ``KeyedJaggedTensorPool`` is spread over ranks."""

    ROW_WISE = "row_wise"
    REPLICATED_ROW_WISE = "replicated_row_wise"


@public_at("recsys_lib.distributed.types")
@dataclass
class ObjectPoolShardingPlan(ModuleShardingPlan):
    """Plan of one object pool.

    Attributes:
        sharding_type: ``ObjectPoolShardingType``.
        inference: build the inference variant.
        memory_capacity_per_rank: uneven row split by memory (inference).
    """

    sharding_type: ObjectPoolShardingType
    inference: bool = False
    memory_capacity_per_rank: Optional[List[int]] = None

    def _serialize(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"sharding_type": self.sharding_type.name, "inference": self.inference}
        if self.memory_capacity_per_rank is not None:
            out["memory_capacity_per_rank"] = list(self.memory_capacity_per_rank)
        return out
