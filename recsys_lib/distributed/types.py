"""Types of the distributed package (TorchRec's ``torchrec.distributed.types``).

The definitions live in small private files, one concept each; this module is the public path:

* ``_core/enums``: ``ShardingType``, ``ParameterStorage``, ``PipelineType``, ``ComputeKernel``, ``CommOp``, ``EmbeddingEvent``,
  ``ComputeDevice``, ``ShardingStrategy``, ``ObjectPoolShardingType``, ``StorageUsageType``
* ``_core/storage``: ``compute_storage_usage``
* ``_core/awaitable``: ``Awaitable``, ``NoWait``, ``LazyAwaitable``, ``LazyNoWait``, ``LazyGetItemMixin``, ``GetItemLazyAwaitable``
* ``_collectives/codec``: ``QuantizedCommCodec``, ``NoOpQuantizedCommCodec``, ``QuantizedCommCodecs``
* ``_core/plan``: ``ParameterSharding``, ``ModuleShardingPlan``, ``EmbeddingModuleShardingPlan``, ``ShardingPlan``,
  ``CacheParams``, ``CacheStatistics``, ``KeyValueParams``
* ``_core/env``: ``ShardingEnv``, ``NullShardedModuleContext``, ``NullShardingContext``
* ``_core/sharder``: ``ModuleSharder``, ``ShardedModule``, ``ShardingPlanner``, ``get_tensor_size_bytes``, ``rank_device``, ``scope``

Shard metadata are torch's own (``ShardMetadata``, ``EnumerableShardingSpec``, ``ShardedTensor``), so plans and
sharded state dicts share one vocabulary.
"""

from fbgemm_gpu.split_table_batched_embeddings_ops_common import (  # noqa: F401
    BoundsCheckMode,
    CacheAlgorithm,
    MultiPassPrefetchConfig,
)
from torch.distributed._shard.metadata import ShardMetadata  # noqa: F401
from torch.distributed._shard.sharded_tensor import (  # noqa: F401
    Shard,
    ShardedTensor,
    ShardedTensorMetadata,
    TensorProperties,
)
from torch.distributed._shard.sharding_spec import EnumerableShardingSpec, ShardingSpec  # noqa: F401

from recsys_lib.distributed._core.awaitable import (  # noqa: F401
    Awaitable,
    GetItemLazyAwaitable,
    LazyAwaitable,
    LazyGetItemMixin,
    DeviceToHostTensorAwaitable,
    GenericMeta,
    LazyNoWait,
    NoWait,
)
from recsys_lib.distributed._collectives.codec import (  # noqa: F401
    NoOpQuantizedCommCodec,
    QuantizationContext,
    QuantizedCommCodec,
    QuantizedCommCodecs,
)
from recsys_lib.distributed._core.enums import (  # noqa: F401
    CommOp,
    ComputeDevice,
    ComputeKernel,
    EmbeddingEvent,
    ObjectPoolShardingType,
    ParameterStorage,
    PipelineType,
    ShardingStrategy,
    ShardingType,
    StorageUsageType,
)
from recsys_lib.distributed._core.env import NullShardedModuleContext, NullShardingContext, ShardingEnv  # noqa: F401
from recsys_lib.distributed._core.plan import (  # noqa: F401
    CacheParams,
    CacheStatistics,
    EmbeddingModuleShardingPlan,
    KeyValueParams,
    ModuleShardingPlan,
    ObjectPoolShardingPlan,
    ParameterSharding,
    ShardingPlan,
)
from recsys_lib.distributed._pool.plan import ObjectPoolShardingPlan, ObjectPoolShardingType  # noqa: F401
from recsys_lib.distributed._core.sharder import (  # noqa: F401
    ModuleSharder,
    ParameterShardingGenerator,
    ShardedModule,
    ShardingPlanner,
    get_tensor_size_bytes,
    rank_device,
    scope,
)
from recsys_lib.distributed._core.storage import compute_storage_usage  # noqa: F401
from recsys_lib.distributed.utils import ShardingBucketMetadata  # noqa: F401
from recsys_lib.distributed._parallel2d.env import DMPCollectionConfig, DMPCollectionContext, ShardingEnv2D  # noqa: F401
