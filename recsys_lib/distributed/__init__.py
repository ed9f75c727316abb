"""Distributed training: sharders, sharded modules, DistributedModelParallel, planner (torch.distributed engine).

The train-pipeline names are resolved lazily on first access (``recsys_lib.distributed.train_pipeline``).
"""

import importlib
from typing import Any, Dict, List

from recsys_lib.distributed.comm import get_local_rank, get_local_size  # noqa: F401
from recsys_lib.distributed._core.awaitable import Awaitable, NoWait  # noqa: F401
from recsys_lib.distributed._core.env import ShardingEnv  # noqa: F401
from recsys_lib.distributed._core.plan import ParameterSharding  # noqa: F401
from recsys_lib.distributed._core.sharder import ModuleSharder, ShardedModule, ShardingPlanner  # noqa: F401
from torch.distributed._shard.sharded_tensor import ShardedTensor  # noqa: F401
from recsys_lib.distributed.utils import get_unsharded_module_names, sharded_model_copy  # noqa: F401
from recsys_lib.distributed.model_parallel import DistributedModelParallel  # noqa: F401

# name → module that defines it (imported on first access).
_LAZY: Dict[str, str] = {
    "DataLoadingThread": "recsys_lib.distributed.train_pipeline",
    "EvalPipelineSparseDist": "recsys_lib.distributed.train_pipeline",
    "PrefetchTrainPipelineSparseDist": "recsys_lib.distributed.train_pipeline",
    "TrainPipeline": "recsys_lib.distributed.train_pipeline",
    "TrainPipelineBase": "recsys_lib.distributed.train_pipeline",
    "TrainPipelineSparseDist": "recsys_lib.distributed.train_pipeline",
    "train_pipeline": "recsys_lib.distributed.train_pipeline",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'recsys_lib.distributed' has no attribute {name!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise AttributeError(f"recsys_lib.distributed.{name} is not available yet ({module_name} missing)") from e
        raise
    value = module if module_name.endswith("." + name) else getattr(module, name)
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
