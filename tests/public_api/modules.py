from tests.public_api import REQUIRED

_CFG = "recsys_lib.modules.embedding_configs"

NAMES = [
    ("recsys_lib.modules", "embedding_configs"),
] + [
    (_CFG, n)
    for n in [
        "PoolingType", "ShardingType", "DataType", "BaseEmbeddingConfig", "EmbeddingBagConfig", "EmbeddingConfig",
        "EmbeddingTableConfig", "QuantConfig", "data_type_to_dtype", "dtype_to_data_type", "data_type_to_sparse_type",
        "pooling_type_to_pooling_mode", "pooling_type_to_str", "DATA_TYPE_NUM_BITS", "VirtualTableEvictionPolicy",
        "NoEvictionPolicy", "CountBasedEvictionPolicy", "TimestampBasedEvictionPolicy",
        "CountTimestampMixedEvictionPolicy", "FeatureL2NormBasedEvictionPolicy", "FeatureScoreBasedEvictionPolicy",
        "FeatureScoreMapping",
    ]
]

from recsys_lib.types import DataType  # noqa: E402

# Dataclass fields past data_type use default factories (shown as <factory>), so pin the leading ones.
_CFG_HEAD = [("num_embeddings", REQUIRED), ("embedding_dim", REQUIRED), ("name", ""), ("data_type", DataType.FP32)]


SIGNATURES = [
    (_CFG, "EmbeddingBagConfig", _CFG_HEAD),
    (_CFG, "EmbeddingConfig", _CFG_HEAD),
    (_CFG, "EmbeddingTableConfig", _CFG_HEAD),
    (_CFG, "pooling_type_to_pooling_mode", [("pooling_type", REQUIRED), ("sharding_type", None)]),
    (_CFG, "pooling_type_to_str", [("pooling_type", REQUIRED)]),
    (_CFG, "data_type_to_dtype", [("data_type", REQUIRED)]),
    (_CFG, "data_type_to_sparse_type", [("data_type", REQUIRED)]),
    (_CFG, "dtype_to_data_type", [("dtype", REQUIRED)]),
]
