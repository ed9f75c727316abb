"""Enums of the distributed package (values are TorchRec's plan strings)."""

from enum import Enum, unique

from recsys_lib._public import public_at


@unique
@public_at("recsys_lib.distributed.types")
class ShardingType(Enum):
    """How one table is split across ranks; plans store ``.value``.

    The registry ``recsys_lib.distributed.sharding.strategy`` maps each member to its strategy.
    """

    DATA_PARALLEL = "data_parallel"
    TABLE_WISE = "table_wise"
    COLUMN_WISE = "column_wise"
    ROW_WISE = "row_wise"
    TABLE_ROW_WISE = "table_row_wise"
    TABLE_COLUMN_WISE = "table_column_wise"
    GRID_SHARD = "grid_shard"


@unique
@public_at("recsys_lib.distributed.types")
class ParameterStorage(Enum):
    """Where the planner accounts a parameter's bytes."""

    HBM = "hbm"
    DDR = "ddr"


@unique
@public_at("recsys_lib.distributed.types")
class PipelineType(Enum):
    """Train pipeline kind (affects the planner's storage estimate)."""

    NONE = "none"
    TRAIN_BASE = "train_base"
    TRAIN_SPARSE_DIST = "train_sparse_dist"
    TRAIN_PREFETCH_SPARSE_DIST = "train_prefetch_sparse_dist"


@unique
@public_at("recsys_lib.distributed.types")
class ComputeKernel(Enum):
    """Base compute kernel; embedding kernels live in ``embedding_types.EmbeddingComputeKernel``."""

    DEFAULT = "default"


@unique
@public_at("recsys_lib.distributed.types")
class CommOp(Enum):
    """Output-dist collectives that can carry a quantized codec (keys of the qcomm registry)."""

    POOLED_EMBEDDINGS_ALL_TO_ALL = "pooled_embeddings_all_to_all"
    POOLED_EMBEDDINGS_REDUCE_SCATTER = "pooled_embeddings_reduce_scatter"
    SEQUENCE_EMBEDDINGS_ALL_TO_ALL = "sequence_embeddings_all_to_all"


@unique
@public_at("recsys_lib.distributed.types")
class EmbeddingEvent(Enum):
    """Profiler annotation names of a sharded embedding step."""

    KJT_SPLITS_DIST = "splits_dist"
    KJT_TENSORS_DIST = "tensors_dist"
    LOOKUP = "lookup"
    OUTPUT_DIST = "output_dist"
    OUTPUT_DIST_WAIT = "output_dist_wait"


@unique
@public_at("recsys_lib.distributed.types")
class ComputeDevice(Enum):
    """Device type a sharded table computes on."""

    CUDA = "cuda"
    CPU = "cpu"
    MTIA = "mtia"


@unique
@public_at("recsys_lib.distributed.types")
class ShardingStrategy(Enum):
    """How ``DMPCollection`` spreads a model over its sharding groups."""

    DEFAULT = "default"
    PER_MODULE = "per_module"
    FULLY_SHARDED = "fully_sharded"


@unique
@public_at("recsys_lib.distributed.types")
class ObjectPoolShardingType(Enum):
    """How an object pool (tensor / KJT pool) is split across ranks."""

    ROW_WISE = "row_wise"
    REPLICATED_ROW_WISE = "replicated_row_wise"


@unique
@public_at("recsys_lib.distributed.types")
class StorageUsageType(Enum):
    """Which sharder family asks ``compute_storage_usage`` (values: the sharder base class names)."""

    BASE_QUANT = "BaseQuantEmbeddingSharder"
    BASE = "BaseEmbeddingSharder"
    DEFAULT = "ModuleSharder"
