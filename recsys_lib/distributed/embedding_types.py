"""TorchRec's ``torchrec.distributed.embedding_types``: the public face of the embedding-sharding types.

The names are owned by ``_sharded.table_types`` (compute kernels, sharded-table and grouped configs),
``_sharded.module_bases`` (sharder and sharded-module bases) and ``embedding_sharding`` (``KJTList`` and the other
values input dists deliver, ``FeatureShardingMixIn``: the sharding contract's base); this module re-exports them
and imports nothing else. Code inside the package imports the owners.
"""

from recsys_lib.distributed._sharded.module_bases import (
    BaseEmbeddingSharder,
    BaseQuantEmbeddingSharder,
    ModuleShardingMixIn,
    ShardedEmbeddingModule,
)
from recsys_lib.distributed._sharded.table_types import (
    BaseEmbeddingLookup,
    BaseEmbeddingUpdate,
    BaseGroupedFeatureProcessor,
    DTensorMetadata,
    EmbeddingAttributes,
    EmbeddingComputeKernel,
    GroupedEmbeddingConfig,
    OptimType,
    ShardedConfig,
    ShardedEmbeddingTable,
    ShardedMetaConfig,
    compute_kernel_to_embedding_location,
)
from recsys_lib.distributed.embedding_sharding import FeatureShardingMixIn, InputDistOutputs, KJTList, ListOfKJTList

__all__ = [
    "BaseEmbeddingLookup",
    "BaseEmbeddingSharder",
    "BaseGroupedFeatureProcessor",
    "BaseQuantEmbeddingSharder",
    "EmbeddingAttributes",
    "EmbeddingComputeKernel",
    "FeatureShardingMixIn",
    "GroupedEmbeddingConfig",
    "InputDistOutputs",
    "KJTList",
    "ListOfKJTList",
    "ModuleShardingMixIn",
    "OptimType",
    "ShardedConfig",
    "ShardedEmbeddingModule",
    "ShardedEmbeddingTable",
    "ShardedMetaConfig",
    "compute_kernel_to_embedding_location",
]

for _name in __all__:
    if isinstance(globals()[_name], type):
        globals()[_name].__module__ = __name__  # public classes report their TorchRec path (pickles, reprs)
del _name
