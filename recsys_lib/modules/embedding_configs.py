"""Embedding table configs (field for field TorchRec's) and the dtype / pooling conversion helpers.

A table config describes one embedding table: ``num_embeddings`` rows (``R``) of ``embedding_dim`` columns
(``D``), looked up by the features in ``feature_names``. The default initialisation is
``uniform(-sqrt(1/R), sqrt(1/R))``.

Example::

    from recsys_lib.modules.embedding_configs import EmbeddingBagConfig, PoolingType

    cfg = EmbeddingBagConfig(num_embeddings=100, embedding_dim=8, name="t0", feature_names=["f0", "f1"],
                             pooling=PoolingType.MEAN)
    assert cfg.num_features() == 2 and cfg.get_weight_init_max() == 0.1
"""

import math
from dataclasses import dataclass, field
from enum import Enum, unique
from functools import partial
from types import MappingProxyType
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Union

import torch

from recsys_lib.modules._eviction_policies import (  # noqa: F401  (re-exported: TorchRec's import path)
    CountBasedEvictionPolicy,
    CountTimestampMixedEvictionPolicy,
    FeatureL2NormBasedEvictionPolicy,
    FeatureScoreBasedEvictionPolicy,
    FeatureScoreMapping,
    NoEvictionPolicy,
    TimestampBasedEvictionPolicy,
    VirtualTableEvictionPolicy,
)
from recsys_lib.types import DataType


@unique
class PoolingType(Enum):
    """How the rows looked up by one bag are reduced (``NONE``: kept as a sequence)."""

    SUM = "SUM"
    MEAN = "MEAN"
    NONE = "NONE"


@unique
class ShardingType(Enum):
    """Ways to split a table across ranks (the planner-facing names; values are TorchRec's strings)."""

    DATA_PARALLEL = "data_parallel"
    TABLE_WISE = "table_wise"
    COLUMN_WISE = "column_wise"
    ROW_WISE = "row_wise"
    TABLE_ROW_WISE = "table_row_wise"
    TABLE_COLUMN_WISE = "table_column_wise"


# Read-only mapping: bits per stored element.
DATA_TYPE_NUM_BITS = MappingProxyType(
    {
        DataType.FP32: 32,
        DataType.FP16: 16,
        DataType.BF16: 16,
        DataType.INT8: 8,
        DataType.UINT8: 8,
        DataType.NFP8: 8,
        DataType.INT4: 4,
        DataType.INT2: 2,
    }
)


def _check_positive_int(value: Any, what: str, table: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"table {table!r}: {what} must be an int, got {type(value).__name__} ({value!r})")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"table {table!r}: {what} must be {bound}, got {value}")


@dataclass
class BaseEmbeddingConfig:
    """Fields shared by every table config.

    Args:
        num_embeddings: rows ``R`` of the table (> 0).
        embedding_dim: columns ``D`` of the table (> 0).
        name: table name; unique within a collection.
        data_type: storage dtype of the weights.
        feature_names: features looked up in this table (empty: the table name is the one feature).
        weight_init_max / weight_init_min: bounds of the default uniform init (default ``±sqrt(1/R)``).
        num_embeddings_post_pruning: rows left after pruning (inference), if any.
        init_fn: called on the weight to initialise it; default ``uniform_(min, max)``.
        need_pos: whether sharded lookups need the position of each id in its bag.
        input_dim / total_num_buckets / use_virtual_table / virtual_table_eviction_policy /
        enable_embedding_update / stash_weights: KV-table and ZCH options, accepted and ignored by recsys_lib.
    """

    num_embeddings: int
    embedding_dim: int
    name: str = ""
    data_type: DataType = DataType.FP32
    feature_names: List[str] = field(default_factory=list)
    weight_init_max: Optional[float] = None
    weight_init_min: Optional[float] = None
    num_embeddings_post_pruning: Optional[int] = None
    init_fn: Optional[Callable[[torch.Tensor], Optional[torch.Tensor]]] = None
    need_pos: bool = False
    input_dim: Optional[int] = None
    total_num_buckets: Optional[int] = None
    use_virtual_table: bool = False
    virtual_table_eviction_policy: Optional[VirtualTableEvictionPolicy] = None
    enable_embedding_update: bool = False
    stash_weights: bool = False

    # Sharded sub-tables (``EmbeddingTableConfig``) may hold zero local rows.
    _allow_empty_rows = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise TypeError(f"table name must be a str, got {type(self.name).__name__} ({self.name!r})")
        _check_positive_int(self.num_embeddings, "num_embeddings", self.name, allow_zero=self._allow_empty_rows)
        _check_positive_int(self.embedding_dim, "embedding_dim", self.name)
        if not isinstance(self.data_type, DataType):
            raise TypeError(f"table {self.name!r}: data_type must be a DataType, got {self.data_type!r}")
        if isinstance(self.feature_names, str) or not all(isinstance(f, str) for f in self.feature_names):
            raise TypeError(f"table {self.name!r}: feature_names must be a list of str, got {self.feature_names!r}")
        self.feature_names = list(self.feature_names)
        seen = set()
        for f in self.feature_names:
            if f in seen:
                raise ValueError(f"table {self.name!r}: feature {f!r} is listed more than once in feature_names")
            seen.add(f)
        lo, hi = self.get_weight_init_min(), self.get_weight_init_max()
        if lo > hi:
            raise ValueError(f"table {self.name!r}: weight_init_min {lo} is larger than weight_init_max {hi}")
        if self.init_fn is None:
            self.init_fn = partial(torch.nn.init.uniform_, a=lo, b=hi)

    def get_weight_init_max(self) -> float:
        """Upper bound of the default uniform init: ``weight_init_max`` or ``sqrt(1/num_embeddings)``."""
        if self.weight_init_max is not None:
            return float(self.weight_init_max)
        return math.sqrt(1.0 / max(self.num_embeddings, 1))

    def get_weight_init_min(self) -> float:
        """Lower bound of the default uniform init: ``weight_init_min`` or ``-sqrt(1/num_embeddings)``."""
        if self.weight_init_min is not None:
            return float(self.weight_init_min)
        return -math.sqrt(1.0 / max(self.num_embeddings, 1))

    def num_features(self) -> int:
        """Number of features looked up in this table."""
        return len(self.feature_names)


@dataclass
class EmbeddingTableConfig(BaseEmbeddingConfig):
    """Table config used inside sharding: pooling, weighting and the output names of each feature."""

    pooling: PoolingType = PoolingType.SUM
    is_weighted: bool = False
    has_feature_processor: bool = False
    embedding_names: List[str] = field(default_factory=list)

    _allow_empty_rows = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pooling, PoolingType):
            raise TypeError(f"table {self.name!r}: pooling must be a PoolingType, got {self.pooling!r}")


@dataclass
class EmbeddingBagConfig(BaseEmbeddingConfig):
    """Config of a pooled table (``EmbeddingBagCollection``): each bag of ids is reduced by ``pooling``."""

    pooling: PoolingType = PoolingType.SUM

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.pooling, PoolingType):
            raise TypeError(f"table {self.name!r}: pooling must be a PoolingType, got {self.pooling!r}")


@dataclass
class EmbeddingConfig(BaseEmbeddingConfig):
    """Config of a sequence table (``EmbeddingCollection``): one row per id, no pooling."""


class QuantConfig(NamedTuple):
    """Observers given to ``quantize_dynamic`` for embedding modules (``per_table_weight_dtype``: table → dtype)."""

    activation: Any
    weight: Any
    per_table_weight_dtype: Optional[Dict[str, torch.dtype]] = None


def validate_table_names(tables: List[BaseEmbeddingConfig], owner: str) -> None:
    """Raise ``ValueError`` unless ``tables`` is non-empty with non-empty, unique names."""
    if len(tables) == 0:
        raise ValueError(f"{owner} needs at least one table config, got none")
    seen = set()
    for i, t in enumerate(tables):
        if not isinstance(t, BaseEmbeddingConfig):
            raise TypeError(f"{owner}: tables[{i}] must be an embedding config, got {type(t).__name__}")
        if t.name == "":
            raise ValueError(f"{owner}: tables[{i}] has an empty name; every table needs a unique name")
        if t.name in seen:
            raise ValueError(f"{owner}: duplicate table name {t.name!r}")
        seen.add(t.name)


_DTYPE_OF = MappingProxyType(
    {
        DataType.FP32: torch.float32,
        DataType.FP16: torch.float16,
        DataType.BF16: torch.bfloat16,
        DataType.INT64: torch.int64,
        DataType.INT32: torch.int32,
        DataType.INT8: torch.int8,
        DataType.UINT8: torch.uint8,
        DataType.INT4: torch.quint4x2,
        DataType.INT2: torch.quint2x4,
        DataType.NFP8: torch.float8_e4m3fn,
    }
)


def data_type_to_dtype(data_type: DataType) -> torch.dtype:
    """``DataType`` → ``torch.dtype`` (INT4/INT2: packed ``quint4x2``/``quint2x4``; NFP8: ``float8_e4m3fn``)."""
    if data_type not in _DTYPE_OF:
        raise ValueError(f"DataType {data_type} has no torch dtype; expected one of {[str(d) for d in _DTYPE_OF]}")
    return _DTYPE_OF[data_type]


def dtype_to_data_type(dtype: torch.dtype) -> DataType:
    """``torch.dtype`` → ``DataType`` (inverse of :func:`data_type_to_dtype`)."""
    for data_type, d in _DTYPE_OF.items():
        if d == dtype:
            return data_type
    raise ValueError(f"torch dtype {dtype} has no DataType; expected one of {list(_DTYPE_OF.values())}")


def data_type_to_sparse_type(data_type: DataType) -> Any:
    """``DataType`` → FBGEMM ``SparseType`` (UINT8 stores as INT8)."""
    from fbgemm_gpu.split_embedding_configs import SparseType

    mapping = {
        DataType.FP32: SparseType.FP32,
        DataType.FP16: SparseType.FP16,
        DataType.BF16: SparseType.BF16,
        DataType.INT8: SparseType.INT8,
        DataType.UINT8: SparseType.INT8,
        DataType.INT4: SparseType.INT4,
        DataType.INT2: SparseType.INT2,
        DataType.NFP8: SparseType.NFP8,
    }
    if data_type not in mapping:
        raise ValueError(f"DataType {data_type} has no FBGEMM SparseType; expected one of {[str(d) for d in mapping]}")
    return mapping[data_type]


def _pools_partial_sums(sharding_type: Union[str, Enum]) -> bool:
    """Whether the strategy's kernels pool partial sums (MEAN divided after the reduction), asked of the
    sharding registry; False for values it does not know."""
    from recsys_lib.distributed.sharding.strategy import registered_sharding_types, strategy_for

    st = sharding_type.value if isinstance(sharding_type, Enum) else sharding_type
    known = {t.value for t in registered_sharding_types()}
    return st in known and strategy_for(st).pools_partial_sums


def pooling_type_to_pooling_mode(pooling_type: PoolingType, sharding_type: Optional[Union[str, Enum]] = None) -> Any:
    """``PoolingType`` → FBGEMM ``PoolingMode``.

    ``MEAN`` becomes ``SUM`` for the shardings whose registry entry pools partial sums (row-wise, table-row-wise):
    they are averaged only after they are combined across ranks (``sharding_type``: a ``ShardingType`` or its value).
    """
    from fbgemm_gpu.split_table_batched_embeddings_ops_common import PoolingMode

    if pooling_type == PoolingType.SUM:
        return PoolingMode.SUM
    if pooling_type == PoolingType.MEAN:
        partial = sharding_type is not None and _pools_partial_sums(sharding_type)
        return PoolingMode.SUM if partial else PoolingMode.MEAN
    if pooling_type == PoolingType.NONE:
        return PoolingMode.NONE
    raise ValueError(f"pooling type {pooling_type!r} is not a PoolingType")


def pooling_type_to_str(pooling_type: PoolingType) -> str:
    """``PoolingType.SUM`` → ``"sum"``, ``MEAN`` → ``"mean"`` (the ``nn.EmbeddingBag`` mode)."""
    if pooling_type == PoolingType.SUM:
        return "sum"
    if pooling_type == PoolingType.MEAN:
        return "mean"
    raise ValueError(f"pooling type {pooling_type!r} has no EmbeddingBag mode; expected SUM or MEAN")
