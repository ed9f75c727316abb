import dataclasses
import math

import pytest
import torch
from fbgemm_gpu.split_embedding_configs import SparseType
from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

from recsys_lib.modules.embedding_configs import (
    DATA_TYPE_NUM_BITS,
    DataType,
    EmbeddingBagConfig,
    EmbeddingConfig,
    EmbeddingTableConfig,
    PoolingType,
    QuantConfig,
    ShardingType,
    data_type_to_dtype,
    data_type_to_sparse_type,
    dtype_to_data_type,
    pooling_type_to_pooling_mode,
    pooling_type_to_str,
    validate_table_names,
)


def test_enum_values_are_torchrec_strings():
    assert [p.value for p in PoolingType] == ["SUM", "MEAN", "NONE"]
    assert ShardingType.ROW_WISE.value == "row_wise"
    assert ShardingType.TABLE_COLUMN_WISE.value == "table_column_wise"
    assert DataType is __import__("recsys_lib.types", fromlist=["DataType"]).DataType


def test_default_init_bounds_and_init_fn():
    cfg = EmbeddingBagConfig(num_embeddings=400, embedding_dim=3, name="t", feature_names=["a", "b"])
    assert cfg.get_weight_init_max() == pytest.approx(math.sqrt(1 / 400))
    assert cfg.get_weight_init_min() == pytest.approx(-math.sqrt(1 / 400))
    assert cfg.num_features() == 2 and cfg.pooling == PoolingType.SUM
    w = torch.full((400, 3), 7.0)
    cfg.init_fn(w)
    assert w.abs().max() <= 0.05 and w.std() > 0.01  # actually re-initialised within ±0.05


def test_explicit_bounds_and_custom_init_fn():
    cfg = EmbeddingConfig(num_embeddings=4, embedding_dim=2, name="t", weight_init_min=1.0, weight_init_max=2.0)
    w = torch.zeros(4, 2)
    cfg.init_fn(w)
    assert (w >= 1.0).all() and (w <= 2.0).all()
    fn = lambda t: t.fill_(3.0)  # noqa: E731
    assert EmbeddingConfig(num_embeddings=4, embedding_dim=2, init_fn=fn).init_fn is fn


def test_replace_and_table_config_fields():
    cfg = EmbeddingTableConfig(num_embeddings=5, embedding_dim=4, name="t", feature_names=["f"],
                               pooling=PoolingType.MEAN, is_weighted=True, embedding_names=["f"])
    other = dataclasses.replace(cfg, name="u")
    assert other.name == "u" and other.is_weighted and other.embedding_names == ["f"]
    # A row-wise shard may hold zero local rows.
    assert EmbeddingTableConfig(num_embeddings=0, embedding_dim=4, name="s").num_embeddings == 0


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(num_embeddings=0, embedding_dim=4), ValueError, "num_embeddings"),
        (dict(num_embeddings=-3, embedding_dim=4), ValueError, "num_embeddings"),
        (dict(num_embeddings=3, embedding_dim=0), ValueError, "embedding_dim"),
        (dict(num_embeddings=3.0, embedding_dim=4), TypeError, "num_embeddings"),
        (dict(num_embeddings=3, embedding_dim=4, feature_names=["a", "a"]), ValueError, "'a'"),
        (dict(num_embeddings=3, embedding_dim=4, feature_names="abc"), TypeError, "feature_names"),
        (dict(num_embeddings=3, embedding_dim=4, data_type="FP32"), TypeError, "data_type"),
        (dict(num_embeddings=3, embedding_dim=4, pooling="SUM"), TypeError, "pooling"),
        (dict(num_embeddings=3, embedding_dim=4, weight_init_min=1.0, weight_init_max=0.0), ValueError, "weight_init"),
    ],
)
def test_bad_config(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        EmbeddingBagConfig(name="bad", **kwargs)


def test_validate_table_names():
    t = lambda n: EmbeddingBagConfig(num_embeddings=2, embedding_dim=2, name=n)  # noqa: E731
    validate_table_names([t("a"), t("b")], "X")
    with pytest.raises(ValueError, match="at least one"):
        validate_table_names([], "X")
    with pytest.raises(ValueError, match="duplicate table name 'a'"):
        validate_table_names([t("a"), t("a")], "X")
    with pytest.raises(ValueError, match="empty name"):
        validate_table_names([t("")], "X")


def test_dtype_conversions_round_trip():
    for dt in [DataType.FP32, DataType.FP16, DataType.BF16, DataType.INT8, DataType.UINT8, DataType.INT64]:
        assert dtype_to_data_type(data_type_to_dtype(dt)) == dt
    assert data_type_to_dtype(DataType.INT4) == torch.quint4x2
    assert data_type_to_dtype(DataType.NFP8) == torch.float8_e4m3fn
    with pytest.raises(ValueError, match="complex64"):
        dtype_to_data_type(torch.complex64)
    assert data_type_to_sparse_type(DataType.FP16) == SparseType.FP16
    assert data_type_to_sparse_type(DataType.UINT8) == SparseType.INT8
    with pytest.raises(ValueError, match="INT64"):
        data_type_to_sparse_type(DataType.INT64)
    assert DATA_TYPE_NUM_BITS[DataType.INT4] == 4 and DATA_TYPE_NUM_BITS[DataType.BF16] == 16


def test_pooling_conversions():
    assert pooling_type_to_pooling_mode(PoolingType.SUM) == PoolingMode.SUM
    assert pooling_type_to_pooling_mode(PoolingType.MEAN) == PoolingMode.MEAN
    assert pooling_type_to_pooling_mode(PoolingType.NONE) == PoolingMode.NONE
    assert pooling_type_to_pooling_mode(PoolingType.MEAN, "table_wise") == PoolingMode.MEAN
    assert pooling_type_to_pooling_mode(PoolingType.MEAN, ShardingType.ROW_WISE) == PoolingMode.SUM
    assert pooling_type_to_pooling_mode(PoolingType.MEAN, "table_row_wise") == PoolingMode.SUM
    assert pooling_type_to_pooling_mode(PoolingType.MEAN, ShardingType.COLUMN_WISE) == PoolingMode.MEAN
    assert pooling_type_to_str(PoolingType.MEAN) == "mean" and pooling_type_to_str(PoolingType.SUM) == "sum"
    with pytest.raises(ValueError, match="NONE"):
        pooling_type_to_str(PoolingType.NONE)


def test_quant_config():
    q = QuantConfig(activation=1, weight=2)
    assert q.per_table_weight_dtype is None and q._fields == ("activation", "weight", "per_table_weight_dtype")
